"""What a fresh baseline costs a canary: time to its first traffic, and to roll back.

Side by side in one run, interleaved, a canary of two replicas at setWeight 50
followed by an analysis step, on the real process provider and embedded router:

- baseline: ``canary.baseline: stable`` (the default): only the canary starts;
- fresh: ``canary.baseline: fresh``: the canary and one baseline instance start
  together (one ``create`` each, one wait for both).

Measured: ``RolloutExecutor.start`` until the router serves the canary its 50%
(the moment the analysis can begin), then ``kiln abort`` until the rollout is
rolled back (the canary, and the fresh group, drained and destroyed).
"""

from __future__ import annotations

import statistics
import sys
import time

from tests.e2e.test_rollout_executor import Ledger

from benchmarks.common import report
from benchmarks.rollout_rig import rollout_rig
from kiln.core.digest import digest_bytes
from kiln.core.rollout.planner import Phase
from kiln.core.spec.loader import load_spec
from kiln.ports.clock import SystemClock
from kiln.ports.state import Signal
from kiln.services.rollout import RolloutExecutor

SPEC = """\
service: hello
environments:
  - name: prod
    replicas: 2
    health: {{interval: 10ms, startTimeout: 20s}}
    strategy:
      canary:
        baseline: {baseline}
        steps:
          - setWeight: 50
          - analysis: {{duration: 60s}}
          - setWeight: 100
"""


def main(argv: list[str]) -> int:
    repeat = 3 if "--quick" in argv else 10
    with rollout_rig("kiln-bench-baseline-") as rig:
        router, desired, provider = rig.router, rig.desired, rig.provider

        def executor(baseline: str) -> RolloutExecutor:
            return RolloutExecutor(
                spec=load_spec(SPEC.format(baseline=baseline)),
                desired=desired,
                provider=provider,
                router=router,
                recorder=Ledger(),
                clock=SystemClock(),
                launcher=rig.launch,
                actor="bench",
            )

        runs = {"stable": executor("stable"), "fresh": executor("fresh")}

        def canary(kind: str, n: int) -> tuple[float, float]:
            run = runs[kind]
            start = time.perf_counter()
            begun = run.start("prod", digest_bytes(f"v{n}".encode()))
            while True:
                run.tick("prod")
                table = router.current()
                entry = table.release(begun.candidate) if table else None
                if entry is not None and entry.weight == 50:
                    break
                if time.perf_counter() - start > 60:
                    raise RuntimeError("the canary never got its traffic")
                time.sleep(0.005)
            first = time.perf_counter() - start
            run.signal("prod", Signal.ABORT)
            stop = time.perf_counter()
            final = run.run("prod", timeout=60)
            assert final.phase is Phase.ROLLED_BACK, final
            left = [i for i in provider.list() if i.release.endswith("+baseline")]
            assert not left, left
            return first, time.perf_counter() - stop

        first = runs["stable"].start("prod", digest_bytes(b"v0"))  # the stable release
        assert runs["stable"].run("prod", timeout=60).phase is Phase.SUCCEEDED, first
        times: dict[str, list[tuple[float, float]]] = {"stable": [], "fresh": []}
        for n in range(1, repeat + 1):  # interleaved: the machine's noise hits both
            for kind in ("stable", "fresh") if n % 2 else ("fresh", "stable"):
                times[kind].append(canary(kind, 2 * n + (kind == "fresh")))
        med = {
            kind: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
            for kind, ts in times.items()
        }
        (s_first, s_back), (f_first, f_back) = med["stable"], med["fresh"]
        rows = [
            {"path": "start -> canary at 50%, baseline: stable", "median_ms": s_first * 1000,
             "ratio": 1.0},
            {"path": "start -> canary at 50%, baseline: fresh", "median_ms": f_first * 1000,
             "ratio": f_first / s_first},
            {"path": "abort -> rolled back, baseline: stable", "median_ms": s_back * 1000,
             "ratio": 1.0},
            {"path": "abort -> rolled back, baseline: fresh", "median_ms": f_back * 1000,
             "ratio": f_back / s_back},
        ]  # fmt: skip
        report("fresh_baseline", rows, {"repeat": repeat, "replicas": 2, "weight": 50})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
