"""A controller's worker stops driving an environment the moment its leadership is gone."""

from __future__ import annotations

import time
from typing import Any, cast

from kiln.core.spec.loader import load_spec
from kiln.ports.clock import SystemClock
from kiln.services.controller import Controller

SPEC = load_spec(b"service: hello\nenvironments:\n  - name: prod\n")


class FlipLeader:
    """Leads ``prod`` until ``lose()`` (as a PostgreSQL lock does when its session dies)."""

    def __init__(self) -> None:
        self.leading = True

    def try_acquire(self, environment: str, *, above: int = 0) -> bool:
        return self.leading

    def epoch(self, environment: str) -> int | None:
        return None

    def release(self, environment: str) -> None:
        self.leading = False

    def held(self) -> frozenset[str]:
        return frozenset({"prod"}) if self.leading else frozenset()

    def lose(self) -> None:
        self.leading = False


class Unfenced:
    """An executor that is never ticked and whose term is never over."""

    def check_term(self, environment: str) -> None:
        pass

    def served_term(self) -> int:
        return 0

    def flush_outbox(self) -> int:
        return 0

    def settle(self, environment: str) -> None:
        pass


def wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_worker_stops_when_leadership_is_lost_and_restarts_when_won_back() -> None:
    leader = FlipLeader()
    controller = Controller(
        spec=SPEC,
        leader=leader,
        clock=SystemClock(),
        address="test",
        executors={"prod": cast(Any, Unfenced())},  # never ticked: no rollout in the store
        heal_interval=0.02,
    )
    try:
        assert controller.claim_environments() == ["prod"]
        worker = controller._workers["prod"]
        assert worker.thread.is_alive()
        leader.lose()
        wait_for(lambda: not worker.thread.is_alive())
        assert worker.error == "not the leader any more"
        assert controller.claim_environments() == []  # someone else leads now
        leader.leading = True
        assert controller.claim_environments() == ["prod"]
        wait_for(lambda: controller._workers["prod"].thread.is_alive())
    finally:
        controller.stop()
