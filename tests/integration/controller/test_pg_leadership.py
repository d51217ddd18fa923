"""One leader per environment through PostgreSQL advisory locks, on a real PostgreSQL 15.

Two ``Controller`` objects share one database (as two ``kiln serve`` processes
on two hosts would); each holds its locks on its own dedicated session. Only
one leads each environment; cutting the leader's session (``pg_terminate_backend``,
what a network partition or a crashed host amounts to) hands leadership over.
Each acquisition is a new term numbered in ``kiln_leader_terms``; the old
leader's writes in its old term are refused by the state store (fencing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kiln.adapters.store.pgleader import PostgresLeaderLock, lock_key
from kiln.core.digest import digest_bytes
from kiln.core.spec.loader import load_spec
from kiln.errors import StaleLeader
from kiln.ports.clock import SystemClock
from kiln.ports.state import DesiredState, Signal
from kiln.services.controller import Controller
from kiln.services.rollout import RolloutExecutor
from tests.unit.rollout.test_fencing import Rig

pytestmark = pytest.mark.integration

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: staging
  - name: prod
"""
)
ENVS = {"staging", "prod"}


@pytest.fixture
def locks(dsn: str) -> Iterator[tuple[PostgresLeaderLock, PostgresLeaderLock]]:
    a = PostgresLeaderLock(dsn, namespace="hello")
    b = PostgresLeaderLock(dsn, namespace="hello")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def controller(lock: PostgresLeaderLock, name: str) -> Controller:
    return Controller(spec=SPEC, leader=lock, clock=SystemClock(), address=name)


def sessions_holding(dsn: str) -> dict[int, int]:
    """Advisory locks granted, by backend pid."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "GROUP BY pid"
        ).fetchall()
    return {int(pid): int(n) for pid, n in rows}


def test_two_controllers_on_one_database_never_lead_the_same_environment(
    dsn: str, locks: tuple[PostgresLeaderLock, PostgresLeaderLock]
) -> None:
    first, second = controller(locks[0], "a"), controller(locks[1], "b")
    assert set(first.claim_environments()) == ENVS
    assert second.claim_environments() == []
    for _ in range(3):  # claiming again changes nothing
        assert set(first.claim_environments()) == ENVS and second.claim_environments() == []
    assert locks[0].held() == ENVS and locks[1].held() == frozenset()
    assert sorted(sessions_holding(dsn).values()) == [2]  # one session holds both


def test_killing_the_leaders_session_hands_leadership_over(
    dsn: str, locks: tuple[PostgresLeaderLock, PostgresLeaderLock]
) -> None:
    first, second = controller(locks[0], "a"), controller(locks[1], "b")
    assert set(first.claim_environments()) == ENVS
    (leader_pid,) = sessions_holding(dsn)
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (leader_pid,)).fetchone() == (True,)
    deadline = time.monotonic() + 10
    while set(second.claim_environments()) != ENVS:
        assert time.monotonic() < deadline, "the follower never took over"
        time.sleep(0.05)
    assert locks[0].check() == frozenset()  # the old leader knows it lost its session
    assert first.claim_environments() == []  # and cannot win it back while b leads
    assert locks[1].held() == ENVS


def test_a_released_environment_goes_to_the_other_controller(
    locks: tuple[PostgresLeaderLock, PostgresLeaderLock],
) -> None:
    a, b = locks
    assert a.try_acquire("prod") and not b.try_acquire("prod")
    a.release("prod")
    assert a.held() == frozenset()
    assert b.try_acquire("prod") and b.held() == {"prod"}


def test_services_sharing_a_database_do_not_contend(dsn: str) -> None:
    hello, shop = (
        PostgresLeaderLock(dsn, namespace="hello"),
        PostgresLeaderLock(dsn, namespace="shop"),
    )
    try:
        assert hello.try_acquire("prod") and shop.try_acquire("prod")
    finally:
        hello.close()
        shop.close()
    assert lock_key("hello", "prod") != lock_key("shop", "prod")
    assert -(2**63) <= lock_key("hello", "prod") < 2**63


def test_a_database_that_is_down_means_leading_nothing() -> None:
    lock = PostgresLeaderLock(
        "host=127.0.0.1 port=1 user=postgres connect_timeout=1", namespace="x"
    )
    assert lock.try_acquire("prod") is False
    assert lock.held() == frozenset()
    lock.close()


# --- terms (fencing) ---------------------------------------------------------------------


def pg_epoch(dsn: str, environment: str) -> int | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT epoch FROM kiln_leader_terms WHERE namespace = 'hello' AND environment = %s",
            (environment,),
        ).fetchone()
    return None if row is None else int(row[0])


def test_every_acquisition_is_a_new_term_above_the_last_and_above_the_store(
    dsn: str, locks: tuple[PostgresLeaderLock, PostgresLeaderLock]
) -> None:
    a, b = locks
    assert a.epoch("prod") is None
    assert a.try_acquire("prod") and a.epoch("prod") == 1 == pg_epoch(dsn, "prod")
    assert a.try_acquire("prod") and a.epoch("prod") == 1  # still the same term
    a.release("prod")
    assert a.epoch("prod") is None
    assert b.try_acquire("prod") and b.epoch("prod") == 2
    b.release("prod")
    # The store already saw term 9 (file locks before KILN_DATABASE was set): above it.
    assert a.try_acquire("prod", above=9) and a.epoch("prod") == 10 == pg_epoch(dsn, "prod")
    a.release("prod")
    assert b.try_acquire("prod", above=3) and b.epoch("prod") == 11  # never back


def fenced(lock: PostgresLeaderLock, executor: RolloutExecutor, store: DesiredState) -> Controller:
    return Controller(
        spec=SPEC,
        leader=lock,
        clock=SystemClock(),
        address=executor.spec.service,
        desired=store,
        executors={"prod": executor},
    )


def test_a_leader_whose_session_was_cut_is_refused_and_stands_down(
    dsn: str, locks: tuple[PostgresLeaderLock, PostgresLeaderLock], tmp_path: Path
) -> None:
    """The old leader's session is terminated; it has not noticed yet (its lock
    object still says it leads) when the other controller takes over in a newer
    term; every write the old one then makes is refused and its worker stands down."""
    rig = Rig(tmp_path, spec=SPEC)
    store = rig.desired
    old_exec, new_exec = rig.executor("controller:old"), rig.executor("controller:new")
    old = fenced(locks[0], old_exec, store)
    new = fenced(locks[1], new_exec, store)
    try:
        assert "prod" in old.claim_environments()
        first = locks[0].epoch("prod")
        assert first is not None and store.term("prod") == first == old_exec.epoch("prod")
        state = old_exec.start("prod", digest_bytes(b"v1"))  # a write in its own term
        old_worker = old._workers["prod"]

        (leader_pid,) = sessions_holding(dsn)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (leader_pid,))
        deadline = time.monotonic() + 10
        while "prod" not in new.claim_environments():
            assert time.monotonic() < deadline, "the follower never took over"
            time.sleep(0.05)
        second = locks[1].epoch("prod")
        assert second is not None and second > first
        assert store.term("prod") == second == pg_epoch(dsn, "prod")
        assert "prod" in locks[0].held()  # the old one has not noticed: no check yet

        with pytest.raises(StaleLeader, match=f"term {first} is over"):
            store.save_rollout(state, epoch=first)  # the old one's write
        with pytest.raises(StaleLeader):
            old_exec.signal("prod", Signal.ABORT)
        deadline = time.monotonic() + 10
        while old_worker.thread.is_alive():
            assert time.monotonic() < deadline, "the old worker never stood down"
            time.sleep(0.05)
        assert old_worker.error.startswith("stood down")
        assert "prod" not in locks[0].held()
        assert old.claim_environments() == []  # a follower now
        assert store.take_signals("prod", epoch=second) == frozenset()  # nothing got through
    finally:
        old.stop()
        new.stop()
        store.close()
