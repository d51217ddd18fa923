"""The ``DesiredState`` port: what each environment should be running.

This is the truth the reconciler compares against (issue 9) and the rollout
executor writes before it acts (issue 7): the environment's stable release, the
rollout in progress with its persisted planner state, operator signals
(promote, abort), a pause flag and a manual pin. A rollback or a pin changes the
declared state first, so healing never fights the operator.

Fencing: the leader of an environment opens a *term* (``open_term``) when it
wins the environment's lock, and passes its epoch to every write it makes for
that environment. A write whose epoch is not the current term raises
``kiln.errors.StaleLeader`` and changes nothing. ``epoch=None`` is an unfenced
write (operator declarations, tools that drive no rollout).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from kiln.core.release import Release, ReleaseId
from kiln.core.rollout.planner import RolloutState


class Signal(StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"


@dataclass(frozen=True)
class EnvironmentState:
    environment: str
    stable: ReleaseId | None
    paused: bool = False
    pinned: ReleaseId | None = None


class DesiredState(Protocol):
    def term(self, environment: str) -> int:
        """The epoch of the environment's current term (0 before the first)."""
        ...

    def open_term(self, environment: str, epoch: int) -> None:
        """Start term ``epoch``: ``StaleLeader`` unless it is above the current term."""
        ...

    def put_release(
        self, release: Release, document: Mapping[str, Any], *, epoch: int | None = None
    ) -> None:
        """Remember a release and its resolved config document (idempotent: the same
        id is the same release). The document must hash to ``release.config``."""
        ...

    def release(self, release_id: ReleaseId) -> Release | None: ...

    def release_config(self, release_id: ReleaseId) -> dict[str, Any] | None:
        """The resolved config a release was made with, verified against its digest."""
        ...

    def environment(self, name: str) -> EnvironmentState: ...

    def set_stable(
        self, name: str, release_id: ReleaseId | None, *, epoch: int | None = None
    ) -> None: ...

    def stable_history(self, name: str) -> list[ReleaseId]:
        """Every release that was stable in ``name``, oldest first (no repeats in a row)."""
        ...

    def set_paused(self, name: str, paused: bool) -> None: ...

    def set_pin(self, name: str, release_id: ReleaseId | None) -> None: ...

    def save_rollout(self, state: RolloutState, *, epoch: int | None = None) -> None:
        """Persist the planner state durably before its actions run."""
        ...

    def rollout(self, name: str) -> RolloutState | None:
        """The latest rollout of ``name`` (active or finished)."""
        ...

    def signal(self, name: str, signal: Signal, *, epoch: int | None = None) -> None: ...

    def take_signals(self, name: str, *, epoch: int | None = None) -> frozenset[Signal]:
        """Signals raised since the last call; consumed atomically."""
        ...


class AnalysisJournal(Protocol):
    """The evidence of the analysis step in progress, so a restarted controller resumes it.

    A *round* is what one poll read: ``{metric name: {release: reading as JSON}}``.
    Replaying the rounds of a step, in order, rebuilds its judges exactly (they are
    deterministic), and the last round is the cursor the next poll continues from.
    Rounds are written before the decision they feed is acted on.
    """

    def append_round(
        self,
        environment: str,
        deployment: str,
        step: int,
        seq: int,
        body: Mapping[str, Any],
        *,
        epoch: int | None = None,
    ) -> None:
        """Store round ``seq`` (0, 1, ...) of one step; writing the same seq again is a no-op."""
        ...

    def rounds(self, environment: str, deployment: str, step: int) -> list[dict[str, Any]]:
        """Every stored round of that step, in order."""
        ...

    def forget_rounds(
        self,
        environment: str,
        *,
        keep: tuple[str, int] | None = None,
        epoch: int | None = None,
    ) -> None:
        """Drop the environment's rounds, except those of ``keep`` = (deployment, step)."""
        ...
