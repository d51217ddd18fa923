"""A rollout phase is shown only once the ledger holds its events.

Whoever follows a rollout reads its phase through the controller (its API, so
`kiln deploy` and `kiln pipeline run`) and then asks the ledger what happened:
the promotion gate of the next environment looks for the ``deploy.complete``.
So a reader must never get a terminal phase whose event is not recorded yet;
otherwise it is told the release "has not run healthy". The executor saves a
transition first (crash-safe, and where a fenced store refuses a stale leader)
and records it next; ``RolloutExecutor.rollout`` does not answer in between.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.digest import digest_bytes
from kiln.core.ledger.kinds import EventKind
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.core.spec.loader import load_spec
from kiln.ports.state import Signal
from kiln.services.rollout import RolloutExecutor
from tests.unit.recorder import MemoryRecorder
from tests.unit.rollout.fakes import Clock, launcher
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.traffic.fake_router import FakeRouter

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: dev
    replicas: 1
    strategy:
      canary:
        steps:
          - setWeight: 50
          - pause: {duration: 30s}
          - setWeight: 100
"""
)
V1, V2 = digest_bytes(b"v1"), digest_bytes(b"v2")
TERMINAL_EVENTS = {EventKind.DEPLOY_COMPLETE, EventKind.ROLLBACK}


class ReadingRecorder(MemoryRecorder):
    """Records like the others; just before a terminal event is recorded, another
    thread reads the rollout the way the controller's API does, and what it got
    before the event was in (or None: it was kept waiting) is kept in ``early``."""

    def __init__(self) -> None:
        super().__init__()
        self.read: Callable[[], RolloutState | None] | None = None
        self.early: list[Phase | None] = []
        self.readers: list[tuple[threading.Thread, list[RolloutState | None]]] = []

    def record(self, kind: EventKind, **kw: Any) -> int:
        if kind in TERMINAL_EVENTS and self.read is not None:
            read = self.read
            seen: list[RolloutState | None] = []
            reader = threading.Thread(target=lambda: seen.append(read()))
            reader.start()
            reader.join(0.5)  # ample for a read that is not held back
            self.early.append(seen[0].phase if seen and seen[0] is not None else None)
            self.readers.append((reader, seen))
        return super().record(kind, **kw)

    def shown_later(self) -> list[Phase | None]:
        """What each held-back reader got in the end."""
        out = []
        for reader, seen in self.readers:
            reader.join(10)
            out.append(seen[0].phase if seen and seen[0] is not None else None)
        return out


@dataclass
class Rig:
    tmp: Path
    clock: Clock = field(default_factory=Clock)
    ledger: ReadingRecorder = field(default_factory=ReadingRecorder)

    def executor(self) -> RolloutExecutor:
        desired = SqliteDesiredState(self.tmp / "state.db")

        executor = RolloutExecutor(
            spec=SPEC,
            desired=desired,
            provider=FakeProvider(),
            router=FakeRouter(),
            recorder=self.ledger,
            clock=self.clock,
            launcher=launcher(self.tmp),
            actor="test",
        )
        self.ledger.read = lambda: executor.rollout("dev")
        return executor


def drive(rig: Rig, executor: RolloutExecutor, *, until: Callable[[RolloutState], bool]) -> None:
    """Tick a second at a time until ``until(state)`` (a bounded number of ticks)."""
    for _ in range(200):
        if until(executor.tick("dev").state):
            return
        rig.clock.advance(1.0)
    raise AssertionError("the rollout never got there")


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_succeeded_is_shown_only_once_its_deploy_complete_is_recorded(rig: Rig) -> None:
    executor = rig.executor()
    executor.start("dev", V1)
    drive(rig, executor, until=lambda state: state.phase.terminal)
    assert [e["kind"] for e in rig.ledger.events][-1] is EventKind.DEPLOY_COMPLETE
    assert rig.ledger.early == [None]  # the reader waited for the event
    assert rig.ledger.shown_later() == [Phase.SUCCEEDED]


def test_rolled_back_is_shown_only_once_its_rollback_is_recorded(rig: Rig) -> None:
    executor = rig.executor()
    executor.start("dev", V1)
    drive(rig, executor, until=lambda state: state.phase.terminal)
    executor.start("dev", V2)
    drive(rig, executor, until=lambda state: state.step == 1)  # the pause at 50 %
    executor.signal("dev", Signal.ABORT)
    drive(rig, executor, until=lambda state: state.phase.terminal)
    final = executor.rollout("dev")
    assert final is not None and final.phase is Phase.ROLLED_BACK
    assert EventKind.ROLLBACK in [e["kind"] for e in rig.ledger.events]
    assert rig.ledger.early == [None, None]  # deploy.complete of v1, then the rollback
    assert rig.ledger.shown_later() == [Phase.SUCCEEDED, Phase.ROLLED_BACK]
