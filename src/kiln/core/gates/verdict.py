"""The three verdicts a gate can give, and a gate's result.

Variants are separate types (STYLE.md rule 5): ``Passed`` carries details of
what was checked, ``Failed`` every reason it failed, ``Inconclusive`` why there
was not enough evidence to decide. Only ``Passed`` admits an artifact;
``Inconclusive`` blocks exactly like ``Failed`` (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kiln.core.spec.models import GateName


def _freeze(details: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(details or {})


@dataclass(frozen=True)
class Passed:
    """The gate checked its evidence and found nothing wrong.

    ``notes`` are things worth recording that did not block (an ignored
    advisory, a first release with no baseline).
    """

    details: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def outcome(self) -> str:
        return "passed"

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.notes


@dataclass(frozen=True)
class Failed:
    """The gate found at least one violation; ``reasons`` lists every one."""

    reasons: tuple[str, ...]
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("a Failed verdict needs at least one reason")

    @property
    def outcome(self) -> str:
        return "failed"


@dataclass(frozen=True)
class Inconclusive:
    """The gate could not decide (missing or unusable evidence). It blocks."""

    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.reason:
            raise ValueError("an Inconclusive verdict needs a reason")

    @property
    def outcome(self) -> str:
        return "inconclusive"

    @property
    def reasons(self) -> tuple[str, ...]:
        return (self.reason,)


Verdict = Passed | Failed | Inconclusive


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict, named."""

    gate: GateName
    verdict: Verdict

    @property
    def passed(self) -> bool:
        return isinstance(self.verdict, Passed)


def combine(
    reasons: list[str],
    undecided: list[str],
    details: Mapping[str, Any] | None = None,
    notes: list[str] | None = None,
) -> Verdict:
    """Fold a gate's findings into one verdict.

    Violations win over missing evidence, so a gate that both found a
    vulnerability and could not check one component reports ``Failed`` with
    both reasons rather than hiding the violation behind ``Inconclusive``.
    """
    if reasons:
        return Failed(tuple(reasons + undecided), _freeze(details))
    if undecided:
        return Inconclusive("; ".join(undecided), _freeze(details))
    return Passed(_freeze(details), tuple(notes or ()))
