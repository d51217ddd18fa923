"""Gate ``performance``: the candidate against the last good release, side by side.

Both sides are measured alternately in one run (``kiln.services.perf``), so
machine noise hits them alike. Each side has several runs; we compare medians:

    p95 ratio        = median(candidate p95) / median(baseline p95)   <= max_p95_ratio
    throughput ratio = median(candidate rps) / median(baseline rps)   >= min_throughput_ratio

No baseline is ``Inconclusive`` (blocks) unless this is the first release of
the service, which passes with that fact recorded. Empty or non-positive
measurements are ``Inconclusive``.
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
            return Inconclusive("no performance measurements were provided")
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
        }
        if perf.baseline is None:
            if perf.first_release:
                return Passed(
                    details,
                    ("first release: no last good release to compare with; measurements recorded",),
                )
            return Inconclusive("no baseline: the last good release was not measured")
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
        if reasons:
            return Failed(tuple(reasons), details)
        return Passed(details)
