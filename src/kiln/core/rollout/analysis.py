"""From the judges' answers for one analysis step to the planner's outcome.

Any metric that fails fails the step, with every reason; the step passes early
only when every metric has passed; when the step's time is up, a metric still
without a verdict is concluded, and any ``Inconclusive`` makes the step
inconclusive (which the planner never treats as a pass).
"""

from __future__ import annotations

from collections.abc import Mapping

from kiln.core.analysis.verdicts import Fail, Inconclusive, Pass, Status
from kiln.core.rollout import planner


def aggregate(statuses: Mapping[str, Status], *, final: bool) -> planner.AnalysisOutcome:
    if not statuses:
        return planner.Inconclusive("the step has no metrics to judge")
    failures = [
        f"{name}: {reason}"
        for name, status in sorted(statuses.items())
        if isinstance(status, Fail)
        for reason in status.reasons
    ]
    if failures:
        return planner.Failed("; ".join(failures))
    if all(isinstance(s, Pass) for s in statuses.values()):
        summary = "; ".join(
            f"{n}: {s.summary}" for n, s in sorted(statuses.items()) if isinstance(s, Pass)
        )
        return planner.Passed(summary)
    if not final:
        return planner.Pending()
    unsure = [
        f"{name}: {status.reason}"
        for name, status in sorted(statuses.items())
        if isinstance(status, Inconclusive)
    ]
    return planner.Inconclusive("; ".join(unsure) or "no verdict")
