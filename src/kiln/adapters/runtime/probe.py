"""The HTTP readiness probe: one GET of the health path on loopback.

``http.client`` with a per-probe timeout and ``Connection: close``; a 2xx or 3xx
answer is healthy. Any other answer, a refused connection or a timeout is
``Unhealthy`` with the reason, so a caller polling every 20 ms learns the exact
cause when it gives up.
"""

from __future__ import annotations

import http.client
import time

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
