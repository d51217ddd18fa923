"""One leader per environment through PostgreSQL advisory locks, on a real PostgreSQL 15.

Two ``Controller`` objects share one database (as two ``kiln serve`` processes
on two hosts would); each holds its locks on its own dedicated session. Only
one leads each environment; cutting the leader's session (``pg_terminate_backend``,
what a network partition or a crashed host amounts to) hands leadership over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from kiln.adapters.store.pgleader import PostgresLeaderLock, lock_key
from kiln.core.spec.loader import load_spec
from kiln.ports.clock import SystemClock
from kiln.services.controller import Controller

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
