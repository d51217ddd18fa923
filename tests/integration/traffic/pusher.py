"""Pushes a new route table every ``interval`` seconds until killed: stands in for
the controller in zero-downtime tests.

    python pusher.py embedded ADMIN_SOCKET SPEC_JSON
    python pusher.py haproxy  STATS_SOCKET SPEC_JSON   (SPEC has "state_file")

SPEC: {"environment": "dev", "releases": {"r0": ["127.0.0.1:8001", ...], ...},
"interval": 0.1, "start": 1}. The scenario walks the releases in a ring: the
next release is added at weight 0, takes 10 % more per step while the current
one gives it up, the old one is drained (weight 0), then removed from the table.
Prints ``applied N`` per generation (flushed), so the test can follow along.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from kiln.core.traffic.table import Backend, Release, RouteTable
from kiln.ports.traffic import Router

STEPS_PER_SHIFT = 12


def table_at(step: int, generation: int, spec: dict[str, object]) -> RouteTable:
    releases: dict[str, list[str]] = spec["releases"]  # type: ignore[assignment]
    names = sorted(releases)
    shift, k = divmod(step, STEPS_PER_SHIFT)
    old, new = names[shift % len(names)], names[(shift + 1) % len(names)]

    def rel(name: str, weight: int) -> Release:
        return Release(name, weight, tuple(Backend.parse(a) for a in releases[name]))

    if k == 0:
        chosen = [rel(old, 100), rel(new, 0)]  # added
    elif k < 10:
        chosen = [rel(old, 100 - 10 * k), rel(new, 10 * k)]  # shifting
    elif k == 10:
        chosen = [rel(old, 0), rel(new, 100)]  # old drained
    else:
        chosen = [rel(new, 100)]  # old removed
    return RouteTable(generation, str(spec["environment"]), tuple(chosen))


def router_for(kind: str, target: str, spec: dict[str, object]) -> Router:
    if kind == "embedded":
        from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient

        return EmbeddedRouterClient(socket_path=Path(target))
    from kiln.adapters.traffic.haproxy import HAProxyRouter, RuntimeAPI

    return HAProxyRouter(
        api=RuntimeAPI(Path(target)),
        environment=str(spec["environment"]),
        state_file=Path(str(spec["state_file"])),
    )


def main() -> int:
    kind, target, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    spec = json.loads(raw)
    router = router_for(kind, target, spec)
    interval = float(spec.get("interval", 0.1))
    current = router.current()
    generation = max(int(spec.get("start", 1)), (current.generation + 1) if current else 1)
    step = 0
    limit = int(spec.get("steps", 10**9))
    while step < limit:
        started = time.monotonic()
        applied = router.apply(table_at(step, generation, spec))
        print(f"applied {applied}", flush=True)
        generation += 1
        step += 1
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
