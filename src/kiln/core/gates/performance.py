"""Gate ``performance``: the candidate against the last good release, side by side.

Both sides are measured alternately in one run (``kiln.services.perf``), so
machine noise hits them alike. Each side has several runs; we compare medians:

    p95 ratio        = median(candidate p95) / median(baseline p95)   <= max_p95_ratio
    throughput ratio = median(candidate rps) / median(baseline rps)   >= min_throughput_ratio

The budget may also set absolute limits (``maxP95Ms``, ``minThroughputRps``),
checked on the candidate's medians whenever they are set.

No baseline is ``Inconclusive`` (blocks) unless the evidence says there is no
last good release (``first_release``: nothing has run in the environment yet).
Then the candidate's own measurement must be usable and within the absolute
limits when the budget sets them; it passes with "no baseline" in its notes.
Empty or non-positive measurements are ``Inconclusive``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from kiln.core.gates.inputs import GateInputs, Side
from kiln.core.gates.verdict import Failed, Inconclusive, Passed, Verdict
from kiln.core.spec.models import GateName, PerformanceBudget


def _usable(side: Side) -> str | None:
    if not side.p95_ms or not side.throughput_rps:
        return "has no runs"
    if any(x <= 0 for x in side.p95_ms) or any(x <= 0 for x in side.throughput_rps):
        return "has a run with zero or negative figures (no requests succeeded?)"
    return None


@dataclass(frozen=True)
class PerformanceGate:
    budget: PerformanceBudget

    @property
    def name(self) -> GateName:
        return GateName.PERFORMANCE

    def evaluate(self, inputs: GateInputs) -> Verdict:
        perf = inputs.perf
        if perf is None:
            return Inconclusive(
                "no performance measurements were provided (`kiln pipeline run` and "
                "`kiln pipeline promote` measure the candidate against the last good release)"
            )
        problem = _usable(perf.candidate)
        if problem:
            return Inconclusive(f"the candidate's measurement {problem}")
        cand_p95 = statistics.median(perf.candidate.p95_ms)
        cand_rps = statistics.median(perf.candidate.throughput_rps)
        details: dict[str, object] = {
            "candidate": {
                "p95_ms": cand_p95,
                "throughput_rps": cand_rps,
                "runs": len(perf.candidate.p95_ms),
            },
            "max_p95_ratio": self.budget.max_p95_ratio,
            "min_throughput_ratio": self.budget.min_throughput_ratio,
            "max_p95_ms": self.budget.max_p95_ms,
            "min_throughput_rps": self.budget.min_throughput_rps,
        }
        absolute = self._absolute(cand_p95, cand_rps)
        if perf.baseline is None:
            if not perf.first_release:
                return Inconclusive("no baseline: the last good release was not measured")
            if absolute:
                return Failed(tuple(absolute), details)
            limits = (
                "within the absolute limits"
                if self.budget.max_p95_ms or self.budget.min_throughput_rps
                else "no absolute limit is set (maxP95Ms, minThroughputRps)"
            )
            return Passed(
                details,
                (
                    "no baseline: nothing has run in this environment yet, so there is no last "
                    f"good release to compare with; candidate p95 {cand_p95:.1f} ms, "
                    f"{cand_rps:.1f} req/s (medians), {limits}",
                ),
            )
        problem = _usable(perf.baseline)
        if problem:
            return Inconclusive(f"the baseline's measurement {problem}")
        base_p95 = statistics.median(perf.baseline.p95_ms)
        base_rps = statistics.median(perf.baseline.throughput_rps)
        p95_ratio = cand_p95 / base_p95
        rps_ratio = cand_rps / base_rps
        details.update(
            baseline={
                "p95_ms": base_p95,
                "throughput_rps": base_rps,
                "runs": len(perf.baseline.p95_ms),
            },
            p95_ratio=round(p95_ratio, 4),
            throughput_ratio=round(rps_ratio, 4),
        )
        reasons: list[str] = []
        if p95_ratio > self.budget.max_p95_ratio:
            reasons.append(
                f"p95 latency ratio {p95_ratio:.2f}x exceeds the budget "
                f"{self.budget.max_p95_ratio:.2f}x "
                f"(candidate {cand_p95:.1f} ms vs last good {base_p95:.1f} ms, medians)"
            )
        if rps_ratio < self.budget.min_throughput_ratio:
            reasons.append(
                f"throughput ratio {rps_ratio:.2f}x is below the budget "
                f"{self.budget.min_throughput_ratio:.2f}x "
                f"(candidate {cand_rps:.1f} req/s vs last good {base_rps:.1f} req/s, medians)"
            )
        reasons.extend(absolute)
        if reasons:
            return Failed(tuple(reasons), details)
        return Passed(details)

    def _absolute(self, p95: float, rps: float) -> list[str]:
        out = []
        limit = self.budget.max_p95_ms
        if limit is not None and p95 > limit:
            out.append(f"p95 latency {p95:.1f} ms exceeds the absolute limit {limit:g} ms (median)")
        floor = self.budget.min_throughput_rps
        if floor is not None and rps < floor:
            out.append(
                f"throughput {rps:.1f} req/s is below the absolute floor {floor:g} req/s (median)"
            )
        return out
