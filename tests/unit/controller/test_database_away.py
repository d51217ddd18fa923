"""A shared database away for a moment (``Temporary`` from the state store) neither
ends the claim loop nor kills a worker: both try again."""

from __future__ import annotations

from typing import Any, cast

from kiln.errors import Temporary
from kiln.ports.clock import SystemClock
from kiln.services.controller import Controller
from tests.unit.controller.test_leadership import SPEC, FlipLeader, Unfenced, wait_for


class Flaky:
    """Raises ``Temporary`` for the first ``failures`` calls, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, environment: str) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise Temporary("PostgreSQL (KILN_DATABASE) is unavailable", delay=0.01)
        return 0


class AwayStore:
    def __init__(self, failures: int) -> None:
        self.term = Flaky(failures)

    def rollout(self, environment: str) -> None:
        return None


class AwayExecutor(Unfenced):
    def __init__(self, failures: int) -> None:
        self.check = Flaky(failures)

    def check_term(self, environment: str) -> None:
        self.check(environment)


def controller_of(store: AwayStore, executor: Unfenced) -> Controller:
    return Controller(
        spec=SPEC,
        leader=FlipLeader(),
        clock=SystemClock(),
        address="test",
        desired=cast(Any, store),
        executors={"prod": cast(Any, executor)},
        heal_interval=60.0,
    )


def test_a_claim_that_cannot_read_the_term_is_retried_on_the_next_claim() -> None:
    controller = controller_of(AwayStore(failures=1), Unfenced())
    controller.leader.leading = False  # type: ignore[attr-defined]  # a follower reads the term
    try:
        assert controller.claim_environments() == []  # no exception out of the claim loop
        controller.leader.leading = True  # type: ignore[attr-defined]
        assert controller.claim_environments() == ["prod"]
    finally:
        controller.stop()


def test_a_worker_whose_term_check_fails_keeps_going() -> None:
    executor = AwayExecutor(failures=3)
    controller = controller_of(AwayStore(failures=0), executor)
    try:
        assert controller.claim_environments() == ["prod"]
        wait_for(lambda: executor.check.calls > 3)
        worker = controller._workers["prod"]
        assert worker.thread.is_alive()
        assert "unavailable" in worker.error
    finally:
        controller.stop()
