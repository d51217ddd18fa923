"""The HTTP readiness probe: one GET of the health path on loopback.

``http.client`` with a per-probe timeout and ``Connection: close``; a 2xx or 3xx
answer is healthy. Any other answer, a refused connection or a timeout is
``Unhealthy`` with the reason, so a caller polling every 20 ms learns the exact
cause when it gives up.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Sequence

from kiln.core.runtime.model import HealthResult, Healthy, InstanceId, Unhealthy


def probe(instance: InstanceId, host: str, port: int, path: str, *, timeout: float) -> HealthResult:
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close", "User-Agent": "kiln"})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return Unhealthy(instance, f"{path}: {type(exc).__name__}: {exc}")
    finally:
        connection.close()
    if 200 <= response.status < 400:
        return Healthy(instance, response.status, time.monotonic() - started)
    return Unhealthy(instance, f"{path} answered {response.status}")


Look = Callable[[InstanceId, int], tuple[str, int, str] | str]
"""(instance, round) -> (host, port, health path) while it runs, or why it does not."""


def poll_ready(
    instances: Sequence[InstanceId], *, timeout: float, interval: float, look: Look
) -> dict[InstanceId, HealthResult]:
    """Probe every ``interval`` seconds until each instance is healthy or ``timeout``
    passes. An instance that stops running is given up at once, so a crash costs no
    timeout. Shared by the process and podman providers."""
    deadline = time.monotonic() + timeout
    results: dict[InstanceId, HealthResult] = {}
    pending = set(instances)
    rounds = 0
    while pending:
        rounds += 1
        for instance in sorted(pending):
            target = look(instance, rounds)
            if isinstance(target, str):
                results[instance] = Unhealthy(instance, f"not running: {target}")
                pending.discard(instance)
                continue
            host, port, path = target
            remaining = max(0.05, deadline - time.monotonic())
            result = probe(instance, host, port, path, timeout=min(1.0, remaining))
            results[instance] = result
            if not isinstance(result, Unhealthy):
                pending.discard(instance)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return results
