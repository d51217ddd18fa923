"""A saved rollout phase never runs ahead of the ledger.

Whoever follows a rollout reads its saved phase (the controller's API, so `kiln
deploy` and `kiln pipeline run`) and then asks the ledger what happened: the
promotion gate of the next environment looks for the ``deploy.complete``. So
when a terminal phase is saved, its event must already be recorded; otherwise
a reader in between is told the release "has not run healthy".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.digest import digest_bytes
from kiln.core.ledger.kinds import EventKind
from kiln.core.release import Release
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.core.runtime.model import LaunchSpec
from kiln.core.spec.loader import load_spec
from kiln.ports.state import Signal
from kiln.services.rollout import RolloutExecutor
from tests.unit.recorder import MemoryRecorder
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
TERMINAL_EVENT = {Phase.SUCCEEDED: EventKind.DEPLOY_COMPLETE, Phase.ROLLED_BACK: EventKind.ROLLBACK}


@dataclass
class Clock:
    at: datetime = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class CheckedDesired(SqliteDesiredState):
    """The real store, checking at every save that the ledger is not behind it."""

    def __init__(self, path: Path, ledger: MemoryRecorder) -> None:
        super().__init__(path)
        self.ledger = ledger
        self.saved: list[Phase] = []

    def save_rollout(self, state: RolloutState) -> None:
        kind = TERMINAL_EVENT.get(state.phase)
        if kind is not None:
            recorded = [
                e
                for e in self.ledger.events
                if e["kind"] is kind and e["details"].get("deployment") == state.deployment
            ]
            assert recorded, f"{state.phase} saved before its {kind} was recorded"
        self.saved.append(state.phase)
        super().save_rollout(state)


@dataclass
class Rig:
    tmp: Path
    clock: Clock = field(default_factory=Clock)
    ledger: MemoryRecorder = field(default_factory=MemoryRecorder)

    def executor(self) -> tuple[RolloutExecutor, CheckedDesired]:
        desired = CheckedDesired(self.tmp / "state.db", self.ledger)

        def launch(release: Release) -> LaunchSpec:
            return LaunchSpec(
                service="hello",
                environment=release.environment,
                release=release.id,
                artifact=release.artifact,
                config_digest=release.config,
                root=self.tmp,
                command=("python", "app.py"),
            )

        executor = RolloutExecutor(
            spec=SPEC,
            desired=desired,
            provider=FakeProvider(),
            router=FakeRouter(),
            recorder=self.ledger,
            clock=self.clock,
            launcher=launch,
            actor="test",
        )
        return executor, desired


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


def test_succeeded_is_saved_only_after_its_deploy_complete_is_recorded(rig: Rig) -> None:
    executor, desired = rig.executor()
    executor.start("dev", V1)
    drive(rig, executor, until=lambda state: state.phase.terminal)
    assert (
        desired.saved[-1] is Phase.SUCCEEDED
    )  # the check in save_rollout ran  # the check in save_rollout ran


def test_rolled_back_is_saved_only_after_its_rollback_is_recorded(rig: Rig) -> None:
    executor, desired = rig.executor()
    executor.start("dev", V1)
    drive(rig, executor, until=lambda state: state.phase.terminal)
    executor.start("dev", V2)
    drive(rig, executor, until=lambda state: state.step == 1)  # the pause at 50 %
    executor.signal("dev", Signal.ABORT)
    drive(rig, executor, until=lambda state: state.phase.terminal)
    assert desired.saved[-1] is Phase.ROLLED_BACK
