"""The ``DesiredState`` port: what each environment should be running.

This is the truth the reconciler compares against (issue 9) and the rollout
executor writes before it acts (issue 7): the environment's stable release, the
rollout in progress with its persisted planner state, operator signals
(promote, abort), a pause flag and a manual pin. A rollback or a pin changes the
declared state first, so healing never fights the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

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
    def put_release(self, release: Release) -> None:
        """Remember a release (idempotent: the same id is the same release)."""
        ...

    def release(self, release_id: ReleaseId) -> Release | None: ...

    def environment(self, name: str) -> EnvironmentState: ...

    def set_stable(self, name: str, release_id: ReleaseId | None) -> None: ...

    def set_paused(self, name: str, paused: bool) -> None: ...

    def set_pin(self, name: str, release_id: ReleaseId | None) -> None: ...

    def save_rollout(self, state: RolloutState) -> None:
        """Persist the planner state durably before its actions run."""
        ...

    def rollout(self, name: str) -> RolloutState | None:
        """The latest rollout of ``name`` (active or finished)."""
        ...

    def signal(self, name: str, signal: Signal) -> None: ...

    def take_signals(self, name: str) -> frozenset[Signal]:
        """Signals raised since the last call; consumed atomically."""
        ...
