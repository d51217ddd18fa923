"""What only the PostgreSQL desired state has, on a real PostgreSQL 15: terms shared
with the leader locks, namespaces, migrations under concurrency, and psycopg's
failures as kiln errors that never show the password."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from kiln.adapters.store.pgdesired import PostgresDesiredState
from kiln.adapters.store.pgleader import PostgresLeaderLock
from kiln.adapters.store.postgres import PostgresLedger
from kiln.core.release import ReleaseId
from kiln.core.rollout.planner import RolloutState
from kiln.errors import ConfigError, StaleLeader, Temporary

pytestmark = pytest.mark.integration


@pytest.fixture
def store(dsn: str) -> Iterator[PostgresDesiredState]:
    store = PostgresDesiredState(dsn, namespace="hello")
    yield store
    store.close()


def _state(step: int) -> RolloutState:
    return replace(RolloutState.begin("prod", ReleaseId("r1"), None, 1000.0), step=step)


def test_a_term_is_current_as_soon_as_its_lock_is_won(
    dsn: str, store: PostgresDesiredState
) -> None:
    first, second = (PostgresLeaderLock(dsn, namespace="hello") for _ in range(2))
    try:
        assert first.try_acquire("prod", above=store.term("prod"))
        old = first.epoch("prod")
        assert old == 1
        store.open_term("prod", old)
        store.save_rollout(_state(1), epoch=old)
        first.close()  # its session ends: the lock is free
        assert second.try_acquire("prod", above=store.term("prod"))
        new = second.epoch("prod")
        assert new == 2 and store.term("prod") == 2
        # The successor has not opened its term yet; the old epoch is refused already.
        with pytest.raises(StaleLeader, match="term 1 is over \\(current term 2\\)"):
            store.save_rollout(_state(9), epoch=old)
        with pytest.raises(StaleLeader, match="term 2 is over"):
            store.save_rollout(_state(9), epoch=new)  # nor is a term nobody opened
        store.open_term("prod", new)
        store.save_rollout(_state(2), epoch=new)
        assert store.rollout("prod") == _state(2)
        with pytest.raises(StaleLeader, match="not newer than term 2"):
            store.open_term("prod", old)
    finally:
        first.close()
        second.close()


def test_a_write_holds_a_new_term_back_until_it_commits(
    dsn: str, store: PostgresDesiredState
) -> None:
    """The fence reads the terms row FOR SHARE: a term change waits for the write in
    flight, so no write of term 1 can land after term 2 began."""
    store.open_term("prod", 1)
    with psycopg.connect(dsn, autocommit=True) as writer, psycopg.connect(dsn) as bumper:
        writer.execute("BEGIN")
        writer.execute(
            "SELECT epoch FROM kiln_leader_terms WHERE namespace = 'hello' "
            "AND environment = 'prod' FOR SHARE"
        )
        bumped = threading.Event()

        def bump() -> None:
            bumper.execute(
                "UPDATE kiln_leader_terms SET epoch = epoch + 1 WHERE environment = 'prod'"
            )
            bumped.set()

        thread = threading.Thread(target=bump)
        thread.start()
        assert not bumped.wait(0.5)  # blocked by the write's row lock
        writer.execute("COMMIT")
        thread.join(10)
        assert bumped.is_set()
        bumper.commit()
    assert store.term("prod") == 2


def test_services_sharing_a_database_never_see_each_other(dsn: str) -> None:
    hello = PostgresDesiredState(dsn, namespace="hello")
    other = PostgresDesiredState(dsn, namespace="other")
    try:
        hello.open_term("prod", 4)
        hello.save_rollout(_state(3), epoch=4)
        hello.set_stable("prod", ReleaseId("r1"), epoch=4)
        assert other.rollout("prod") is None
        assert other.term("prod") == 0
        assert other.environment("prod").stable is None
        assert other.environments() == []
        other.open_term("prod", 1)
        other.save_rollout(_state(1), epoch=1)
        assert hello.rollout("prod") == _state(3)
    finally:
        hello.close()
        other.close()


def test_migrations_are_idempotent_and_safe_to_race(dsn: str) -> None:
    """Controllers starting at once on an empty database: desired state, ledger and
    leader locks all create their tables, and every one of them succeeds."""
    barrier = threading.Barrier(6)
    failures: list[BaseException] = []

    def open_one(kind: int) -> None:
        barrier.wait()
        try:
            if kind % 3 == 0:
                PostgresDesiredState(dsn, namespace="hello").close()
            elif kind % 3 == 1:
                PostgresLedger(dsn).close()
            else:
                lock = PostgresLeaderLock(dsn, namespace="hello")
                assert lock.try_acquire(f"env{kind}")
                lock.close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    store = PostgresDesiredState(dsn, namespace="hello")  # once more: nothing to do
    assert store.schema_version() == 1
    store.close()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT component, version FROM schema_version ORDER BY 1, 2"
        ).fetchall()
    assert rows == [("desired", 1), ("ledger", 1)]


def test_a_malformed_dsn_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        PostgresDesiredState("host=127.0.0.1 password=hunter2 nonsense", namespace="hello")
    text = f"{caught.value.message} {caught.value.hint}"
    assert "KILN_DATABASE" in text
    assert "hunter2" not in text


def test_a_refused_login_is_a_config_error_without_the_password(postgres_dsn: str) -> None:
    dsn = postgres_dsn.replace("dbname=postgres", "dbname=no_such_db") + " password=hunter2"
    with pytest.raises(ConfigError, match="KILN_DATABASE") as caught:
        PostgresDesiredState(dsn, namespace="hello")
    assert "no_such_db" in caught.value.message
    assert "hunter2" not in f"{caught.value.message} {caught.value.hint}"


def test_an_unreachable_server_is_temporary() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dsn = f"postgresql://kiln:hunter2@127.0.0.1:{port}/kiln?connect_timeout=2"
    with pytest.raises(Temporary, match="KILN_DATABASE") as caught:
        PostgresDesiredState(dsn, namespace="hello")
    assert "hunter2" not in caught.value.message


def test_a_cut_connection_is_temporary_and_the_next_call_reconnects(
    dsn: str, store: PostgresDesiredState
) -> None:
    store.open_term("prod", 1)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'kiln-desired'"
        )
    with pytest.raises(Temporary, match="unavailable"):
        store.save_rollout(_state(1), epoch=1)
    store.save_rollout(_state(1), epoch=1)  # a fresh session
    assert store.rollout("prod") == _state(1)


def test_a_writer_stopped_inside_its_transaction_holds_a_new_term_back_only_briefly(
    dsn: str,
) -> None:
    """A leader frozen between its fence and its commit holds the terms row; the
    server ends its session after ``stuck_after`` so the successor's term goes on."""
    stuck = PostgresDesiredState(dsn, namespace="hello", stuck_after=0.5)
    stuck.open_term("prod", 1)
    outcome: list[BaseException] = []
    fenced = threading.Event()

    def freeze_mid_write() -> None:
        try:
            with stuck._transaction("write") as cur:
                stuck._fence(cur, "prod", 1)  # holds the row FOR SHARE
                fenced.set()
                time.sleep(3.0)  # stopped, as if by SIGSTOP
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=freeze_mid_write)
    thread.start()
    assert fenced.wait(10)
    lock = PostgresLeaderLock(dsn, namespace="hello")
    try:
        started = time.monotonic()
        assert lock.try_acquire("prod", above=1)
        waited = time.monotonic() - started
        assert lock.epoch("prod") == 2
    finally:
        lock.close()
    thread.join(10)
    assert 0.3 < waited < 2.5  # held back by the frozen writer, then not any more
    assert len(outcome) == 1 and isinstance(outcome[0], Temporary)
    with pytest.raises(StaleLeader):  # the frozen leader's next write: refused
        stuck.save_rollout(_state(1), epoch=1)
    stuck.close()


def test_the_pgstate_benchmark_runs(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import bench_pgstate

    monkeypatch.chdir(tmp_path)
    assert bench_pgstate.main(["--quick", "--dsn", dsn]) == 0
    payload = json.loads((tmp_path / ".bench" / "pgstate.json").read_text())
    assert [row["case"] for row in payload["rows"]] == [
        "rollout transition write, epoch-checked",
        "a tick's reads: rollout() + term()",
    ]
    assert all(row["ratio"] > 0 for row in payload["rows"])


def test_kiln_database_selects_postgresql_for_desired_state_and_the_ledger(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln.adapters.store.desired import SqliteDesiredState
    from kiln.bootstrap.artifacts import release_history
    from kiln.bootstrap.database import desired_state, shared_database
    from kiln.bootstrap.ledger import open_ledger

    assert shared_database() is None  # tests/conftest.py clears it
    local = desired_state(tmp_path, namespace="hello", database=None)
    assert isinstance(local, SqliteDesiredState)
    local.close()
    ledger = open_ledger(tmp_path)
    assert type(ledger.store).__name__ == "SqliteLedger"
    ledger.close()

    monkeypatch.setenv("KILN_DATABASE", dsn)
    shared = desired_state(tmp_path, namespace="hello", database=shared_database())
    assert isinstance(shared, PostgresDesiredState)
    shared.open_term("prod", 1)
    shared.set_stable("prod", ReleaseId("r1"), epoch=1)
    ledger = open_ledger(tmp_path)
    assert isinstance(ledger.store, PostgresLedger)
    ledger.close()
    with release_history(tmp_path / "elsewhere", namespace="hello") as history:
        assert history is not None and history.environments() == ["prod"]
    shared.close()
