"""Deploy latency: time from `deploy` to 100% traffic, minus the app's own start-up.

Side by side in one run, blue/green with no bake and no analysis, one replica:

- baseline: the app's start-up alone: the process provider spawns hello and
  polls its /healthz until it answers (``create`` + ``wait_ready``);
- kiln: ``RolloutExecutor.start`` then ticks until the router serves the new
  release at 100% (the real process provider and the real embedded router).

kiln's overhead is the difference of the medians (target ≤ 0.2 s). The time to
finish (the old release drained and decommissioned) is reported too; it does not
delay traffic.
"""

from __future__ import annotations

import statistics
import sys
import time

from tests.e2e.test_rollout_executor import Ledger

from benchmarks.common import report
from benchmarks.rollout_rig import rollout_rig
from kiln.core.digest import digest_bytes
from kiln.core.release import Release
from kiln.core.rollout.planner import Phase
from kiln.core.runtime.model import Healthy
from kiln.core.spec.loader import load_spec
from kiln.core.traffic.table import RouteTable
from kiln.ports.clock import SystemClock
from kiln.services.rollout import RolloutExecutor

SPEC = """\
service: hello
environments:
  - name: prod
    replicas: 1
    health: {interval: 10ms, startTimeout: 20s}
    strategy: {blueGreen: {autoPromotionSeconds: 0}}
"""


def main(argv: list[str]) -> int:
    repeat = 3 if "--quick" in argv else 10
    with rollout_rig("kiln-bench-deploy-") as rig:
        router, desired, provider, launch = rig.router, rig.desired, rig.provider, rig.launch
        spec = load_spec(SPEC)

        executor = RolloutExecutor(
            spec=spec,
            desired=desired,
            provider=provider,
            router=router,
            recorder=Ledger(),
            clock=SystemClock(),
            launcher=launch,
            actor="bench",
        )

        def baseline(n: int) -> float:
            release = Release.of("prod", digest_bytes(f"base{n}".encode()), "sha256:" + "c" * 64)
            start = time.perf_counter()
            (instance,) = provider.create(launch(release), 1)
            result = provider.wait_ready([instance.id], timeout=20, interval=0.01)[instance.id]
            took = time.perf_counter() - start
            assert isinstance(result, Healthy), result
            provider.destroy(instance.id, drain_timeout=1)
            return took

        full: list[float] = []
        apply = router.apply

        def timed_apply(table: RouteTable) -> None:
            apply(table)  # the moment the router serves the table
            # The first table without the preview rule that gives 100% to one release
            # is the switch (the preview table keeps the old release at 100% by rule).
            if not table.rules and any(r.weight == 100 for r in table.releases):
                full.append(time.perf_counter())

        router.apply = timed_apply  # type: ignore[method-assign]

        def deploy(n: int) -> tuple[float, float]:
            full.clear()
            start = time.perf_counter()
            executor.start("prod", digest_bytes(f"v{n}".encode()))
            final = executor.run("prod", timeout=60)
            assert final.phase is Phase.SUCCEEDED, final
            return full[0] - start, time.perf_counter() - start

        deploy(0)  # the first release: nothing to compare with
        base, kiln, done = [], [], []
        for n in range(1, repeat + 1):  # interleaved: the machine's noise hits both
            base.append(baseline(n))
            to_full, finished = deploy(n)
            kiln.append(to_full)
            done.append(finished)
        b, k, d = (statistics.median(x) for x in (base, kiln, done))
        rows = [
            {"path": "app start-up alone (baseline)", "median_ms": b * 1000, "ratio": 1.0},
            {"path": "kiln deploy -> 100% traffic", "median_ms": k * 1000, "ratio": k / b},
            {"path": "kiln overhead (difference)", "median_ms": (k - b) * 1000, "ratio": None},
            {"path": "kiln deploy -> old decommissioned", "median_ms": d * 1000, "ratio": d / b},
        ]
        report("deploy", rows, {"repeat": repeat, "target_overhead_ms": 200})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
