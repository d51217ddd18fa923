"""A judge's answers: ``Pass``, ``Fail(reasons)``, ``Inconclusive(reason)``, or ``Pending``.

The three verdicts are final: once a judge has said one, the analysis for that
metric is over (a sequential judge may say it early). ``Pending`` is not a
verdict; it means "keep feeding me observations". When an analysis step ends
the caller asks ``conclude()``, which never returns ``Pending``.

Every answer carries ``figures``: the numbers behind it (rates, evidence,
score, sample counts) for ``kiln status`` and the ledger. Figures never hold
anything secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kiln.core.analysis.observations import Observation

Figures = Mapping[str, float]


@dataclass(frozen=True, eq=False)
class Pass:
    """The canary is good enough on this metric."""

    summary: str
    figures: Figures = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Fail:
    """The canary is worse; every reason is stated."""

    reasons: tuple[str, ...]
    figures: Figures = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("a failure names at least one reason")


@dataclass(frozen=True, eq=False)
class Inconclusive:
    """Neither pass nor fail: too little data, a missing metric, a marginal score."""

    reason: str
    figures: Figures = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Pending:
    """No verdict yet; the judge wants more observations."""

    reason: str
    figures: Figures = field(default_factory=dict)


Verdict = Pass | Fail | Inconclusive
Status = Verdict | Pending


class Judge(Protocol):
    """An incremental judge of one metric: feed observations, ask at any time."""

    @property
    def name(self) -> str: ...

    def observe(self, observation: Observation) -> None:
        """Take one window's samples; observations arrive in time order."""
        ...

    def verdict(self) -> Status:
        """The answer so far; a ``Verdict`` here means the judge has decided early."""
        ...

    def conclude(self) -> Verdict:
        """The answer now that the analysis step is over."""
        ...


def combine(statuses: Sequence[tuple[str, Status]]) -> Status:
    """One answer for an analysis step from its metrics' answers, failing closed.

    Any failure fails the step (with every failing metric's reasons); otherwise
    any metric still pending keeps the step pending; otherwise any inconclusive
    metric makes it inconclusive; the step passes only when every metric
    passed. No metrics at all is inconclusive, never a pass.
    """
    if not statuses:
        return Inconclusive("the analysis has no metrics")
    figures = {f"{name}.{key}": value for name, s in statuses for key, value in s.figures.items()}
    failed = [s for _, s in statuses if isinstance(s, Fail)]
    if failed:
        return Fail(tuple(r for s in failed for r in s.reasons), figures)
    pending = [name for name, s in statuses if isinstance(s, Pending)]
    if pending:
        return Pending(f"waiting for {', '.join(pending)}", figures)
    unsure = [s for _, s in statuses if isinstance(s, Inconclusive)]
    if unsure:
        return Inconclusive("; ".join(s.reason for s in unsure), figures)
    return Pass("; ".join(s.summary for _, s in statuses if isinstance(s, Pass)), figures)
