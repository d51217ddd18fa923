"""A stale leader's executor is refused before it acts, and its controller stands down.

"The stale leader" is a second executor object on the same stores holding an
older term, as a controller paused across its successor's election would be;
the provider, router and ledger are in-memory fakes shared by both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.digest import digest_bytes
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.core.spec.loader import load_spec
from kiln.core.spec.models import ServiceSpec
from kiln.core.traffic.table import TERM_SHIFT, Backend, RouteTable
from kiln.core.traffic.table import Release as RouteRelease
from kiln.errors import StaleLeader
from kiln.ports.clock import SystemClock
from kiln.ports.state import Signal
from kiln.services.controller import Controller
from kiln.services.rollout import RolloutExecutor
from tests.unit.recorder import MemoryRecorder
from tests.unit.rollout.fakes import launcher
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.traffic.fake_router import FakeRouter

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: prod
    replicas: 2
    strategy:
      canary:
        steps:
          - setWeight: 50
          - pause: {}
          - setWeight: 100
"""
)
V1, V2 = digest_bytes(b"v1"), digest_bytes(b"v2")


@dataclass
class Rig:
    """Shared stores and fakes; each ``executor`` is one controller's."""

    tmp: Path
    spec: ServiceSpec = SPEC
    provider: FakeProvider = field(default_factory=FakeProvider)
    router: FakeRouter = field(default_factory=FakeRouter)
    ledger: MemoryRecorder = field(default_factory=MemoryRecorder)
    desired: SqliteDesiredState = field(init=False)

    def __post_init__(self) -> None:
        self.desired = SqliteDesiredState(self.tmp / "state.db")

    def executor(self, actor: str) -> RolloutExecutor:
        return RolloutExecutor(
            spec=self.spec,
            desired=self.desired,
            provider=self.provider,
            router=self.router,
            recorder=self.ledger,
            clock=SystemClock(),
            launcher=launcher(self.tmp),
            actor=actor,
            journal=self.desired,
        )

    def lead(self, executor: RolloutExecutor) -> int:
        epoch = self.desired.term("prod") + 1
        self.desired.open_term("prod", epoch)
        executor.lead("prod", epoch)
        return epoch

    def paused_at_50(self, executor: RolloutExecutor) -> None:
        """v1 stable, v2 held at its pause step with half the traffic."""
        executor.start("prod", V1)
        self.until_paused(executor)
        self.desired.signal("prod", Signal.PROMOTE)
        assert executor.run("prod", timeout=10).phase is Phase.SUCCEEDED
        executor.start("prod", V2)
        state = self.until_paused(executor)
        table = self.router.current()
        assert table is not None and table.release(state.candidate).weight == 50  # type: ignore[union-attr]

    def until_paused(self, executor: RolloutExecutor) -> RolloutState:
        for _ in range(50):
            state = executor.tick("prod").state
            if state.step == 1:
                return state
        raise AssertionError(f"never reached the pause step: {state}")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.desired.close()


def test_a_paused_leaders_executor_is_refused_once_a_newer_term_exists(rig: Rig) -> None:
    old = rig.executor("controller:old")
    assert rig.lead(old) == 1
    rig.paused_at_50(old)
    assert rig.router.current().generation >> TERM_SHIFT == 1  # type: ignore[union-attr]

    new = rig.executor("controller:new")  # elected while the old one was paused
    assert rig.lead(new) == 2
    rig.desired.signal("prod", Signal.PROMOTE)  # for whichever leader reads it
    ended = new.run("prod", timeout=10)
    assert ended.phase is Phase.SUCCEEDED
    created, destroyed = len(rig.provider.instances), len(rig.provider.destroyed)
    pushed, events = list(rig.router.applied), len(rig.ledger.events)
    assert rig.router.current().generation >> TERM_SHIFT == 2  # type: ignore[union-attr]

    # The old one wakes up: every way it could act is refused, and nothing changed.
    with pytest.raises(StaleLeader, match="term 1 is over \\(current term 2\\)"):
        old.tick("prod")
    with pytest.raises(StaleLeader):
        old.start("prod", digest_bytes(b"v3"))
    with pytest.raises(StaleLeader):
        old.signal("prod", Signal.ABORT)
    with pytest.raises(StaleLeader):
        old.route_release("prod", ended.candidate, force=True)
    with pytest.raises(StaleLeader):
        old.provision("prod", ended.candidate, 1)
    assert rig.desired.rollout("prod") == ended
    assert (len(rig.provider.instances), len(rig.provider.destroyed)) == (created, destroyed)
    assert rig.router.applied == pushed
    assert len(rig.ledger.events) == events  # no transition recorded twice


def test_a_signal_sent_before_the_election_is_kept_for_the_new_leader(rig: Rig) -> None:
    old = rig.executor("controller:old")
    rig.lead(old)
    rig.paused_at_50(old)
    rig.desired.signal("prod", Signal.PROMOTE)
    rig.lead(rig.executor("controller:new"))
    with pytest.raises(StaleLeader):
        old.tick("prod")  # it must not consume the promotion
    assert rig.desired.take_signals("prod") == {Signal.PROMOTE}


class SwappableLock:
    """A lock that never notices it was lost (a paused holder's view of its lock)."""

    def __init__(self) -> None:
        self.epochs: dict[str, int] = {}
        self.released: list[str] = []

    def try_acquire(self, environment: str, *, above: int = 0) -> bool:
        self.epochs.setdefault(environment, above + 1)
        return True

    def epoch(self, environment: str) -> int | None:
        return self.epochs.get(environment)

    def release(self, environment: str) -> None:
        self.released.append(environment)
        self.epochs.pop(environment, None)

    def held(self) -> frozenset[str]:
        return frozenset(self.epochs)


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_controller_whose_term_is_over_stands_down_logs_once_and_claims_again(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    lock = SwappableLock()
    executor = rig.executor("controller:a")
    controller = Controller(
        spec=SPEC,
        leader=lock,
        clock=SystemClock(),
        address="a",
        desired=rig.desired,
        executors={"prod": executor},
        heal_interval=0.01,
    )
    caplog.set_level(logging.INFO, logger="kiln.services.controller")
    try:
        assert controller.claim_environments() == ["prod"]
        assert rig.desired.term("prod") == 1 and executor.epoch("prod") == 1
        assert controller.environment_status("prod", leader=True)["term"] == 1
        worker = controller._workers["prod"]
        rig.desired.open_term("prod", 2)  # another controller won the environment
        wait_for(lambda: not worker.thread.is_alive())
        assert worker.error.startswith("stood down: prod: this controller's term 1 is over")
        assert lock.released == ["prod"]
        assert "term" not in controller.environment_status("prod", leader=False)
        downs = [r for r in caplog.records if "standing down" in r.getMessage()]
        assert len(downs) == 1 and downs[0].levelno == logging.WARNING
        with pytest.raises(StaleLeader):  # still fenced while it is not leading
            executor.start("prod", V1)
        # It keeps claiming like any follower; this lock grants it again, above term 2.
        assert controller.claim_environments() == ["prod"]
        assert rig.desired.term("prod") == 3 and executor.epoch("prod") == 3
        wait_for(lambda: controller._workers["prod"].thread.is_alive())
        executor.start("prod", V1)  # the new term writes
    finally:
        controller.stop()


def test_a_new_term_starts_above_the_routers_table_when_the_store_lost_its_terms(
    rig: Rig,
) -> None:
    """A state.db lost or restored from an old backup while the router kept serving
    the table of term 4: the next leader starts above it, not stale at its first push."""
    rig.router.apply(
        RouteTable(
            (4 << TERM_SHIFT) + 2, "prod", (RouteRelease("r1", 100, (Backend("127.0.0.1", 9),)),)
        )
    )
    executor = rig.executor("controller:a")
    controller = Controller(
        spec=SPEC,
        leader=SwappableLock(),
        clock=SystemClock(),
        address="a",
        desired=rig.desired,
        executors={"prod": executor},
    )
    try:
        assert controller.claim_environments() == ["prod"]
        assert rig.desired.term("prod") == 5 == executor.epoch("prod")
    finally:
        controller.stop()  # its worker ticks no more: the test drives the executor
    executor.start("prod", V1)
    rig.until_paused(executor)  # it pushed its own table over the old one
    assert rig.router.current().generation >> TERM_SHIFT == 5  # type: ignore[union-attr]
