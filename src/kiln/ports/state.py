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

``Outbox``: the ledger events a rollout transition must not lose, saved in the
same transaction as the transition, until they are in the ledger
(``kiln.services.outbox``; docs/ledger.md, "The rollout outbox").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.outbox import key_for
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


@dataclass(frozen=True)
class PendingEvent:
    """One outbox row: an event saved with a transition, not yet known to be in the ledger."""

    seq: int  # the store's row number: from 1, increasing in commit order, never reused
    environment: str
    deployment: str
    draft: EventDraft

    @property
    def key(self) -> str:
        """The idempotency key the ledger deduplicates on (``kiln.core.ledger.outbox``)."""
        return key_for(self.deployment, self.seq)


class Outbox(Protocol):
    """Events waiting for the ledger, written atomically with the rollout they describe.

    A second store implements exactly these three methods:

    - ``save_rollout_with_events``: in ONE transaction, what ``save_rollout`` does
      (fenced the same way: a stale epoch raises ``StaleLeader`` and writes
      nothing) plus one row per draft, in the given order, each numbered from a
      sequence that is never reused (not even after rows are cleared or the
      transaction rolls back: a gap is fine, a reused number is not) and that
      increases in commit order (serialise these transactions, as SQLite's
      writer lock does, or a flush may see row n+1 before row n commits);
    - ``pending_events``: every row not cleared, by ``seq``;
    - ``clear_events``: delete the rows with these numbers (missing ones ignored).

    Store the draft as data (``kiln.core.ledger.outbox.draft_json``) and give it
    back equal. Nothing here touches the ledger; clearing is not fenced (any
    controller may flush any row: the ledger's ``append_once`` makes it harmless).
    """

    def save_rollout_with_events(
        self, state: RolloutState, drafts: Sequence[EventDraft], *, epoch: int | None = None
    ) -> None:
        """``save_rollout`` and an outbox row per draft, atomically."""
        ...

    def pending_events(self) -> list[PendingEvent]:
        """Every row still in the outbox, oldest first (by ``seq``)."""
        ...

    def clear_events(self, seqs: Sequence[int]) -> None:
        """Drop these rows: their events are in the ledger."""
        ...
