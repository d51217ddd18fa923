"""From the judges' answers for one analysis step to the planner's outcome.

The judges' own ``combine`` merges per-metric answers (failing closed); this
module only maps the result onto the planner's outcome types.
"""

from __future__ import annotations

from collections.abc import Mapping

from kiln.core.analysis.verdicts import Fail, Inconclusive, Pass, Pending, Status, combine
from kiln.core.rollout import planner


def outcome(status: Status) -> planner.AnalysisOutcome:
    match status:
        case Fail(reasons):
            return planner.Failed("; ".join(reasons))
        case Pass(summary):
            return planner.Passed(summary)
        case Inconclusive(reason):
            return planner.Inconclusive(reason)
        case Pending():
            return planner.Pending()
    raise AssertionError(status)  # pragma: no cover


def aggregate(statuses: Mapping[str, Status]) -> planner.AnalysisOutcome:
    return outcome(combine(sorted(statuses.items())))
