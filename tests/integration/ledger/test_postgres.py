"""The PostgreSQL ledger against a real PostgreSQL 15 started by a fixture.

The cluster is a throwaway: ``initdb -A trust --no-sync`` in a temporary
directory owned by the ``postgres`` user (initdb refuses root), then ``pg_ctl``
listening on 127.0.0.1 at a free port with ``fsync=off``. It is stopped and
removed even when a test fails.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kiln.core.ledger import merkle
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.verify import Verified, verify_log
from kiln.errors import Refused

pytestmark = pytest.mark.integration

# The PostgreSQL cluster and the per-test database are fixtures in tests/integration/conftest.py.


def test_appends_query_prove_and_verify_like_sqlite(dsn: str) -> None:
    from kiln.adapters.store.postgres import PostgresLedger

    store = PostgresLedger(dsn)
    try:
        seqs = store.append(
            [
                EventDraft(EventKind.DEPLOY_START, "ci", environment=env, release=f"r{i}")
                for i, env in enumerate(["prod", "staging", "prod"] * 7)
            ]
        )
        assert seqs == list(range(21))
        assert store.record(EventKind.ROLLBACK, actor="kiln", environment="prod") == 21
        assert [e.seq for e in store.query(environment="staging")] == list(range(1, 21, 3))
        assert len(store.query(kinds=[EventKind.ROLLBACK])) == 1
        head = store.head()
        outcome = verify_log(store.entries(), [], head=head)
        assert isinstance(outcome, Verified) and outcome.size == 22
        for seq in (0, 5, 21):
            path = merkle.inclusion_proof(store, seq, head.size)
            leaf = merkle.leaf_hash(next(store.entries(seq, seq + 1)).leaf)
            assert merkle.verify_inclusion(seq, head.size, leaf, path, head.root)
        old = merkle.root_of([e.stored_hash or b"" for e in store.entries(0, 7)])
        proof = merkle.consistency_proof(store, 7, head.size)
        assert merkle.verify_consistency(7, head.size, old, head.root, proof)
        store.add_checkpoint(22, b"note")
        store.add_checkpoint(22, b"note")
        assert store.checkpoints() == [b"note"]
    finally:
        store.close()
    reopened = PostgresLedger(dsn)  # migrations are idempotent
    try:
        assert reopened.size() == 22
    finally:
        reopened.close()


def test_postgres_refuses_update_and_delete(dsn: str) -> None:
    from kiln.adapters.store.postgres import PostgresLedger

    store = PostgresLedger(dsn)
    try:
        store.record(EventKind.BUILD, actor="ci")
        for sql in ("UPDATE ledger_events SET body = 'x'", "DELETE FROM ledger_events"):
            with pytest.raises(Refused), store._write() as cur:
                cur.execute(sql)
        assert store.size() == 1
    finally:
        store.close()


def test_concurrent_writers_never_fork_the_tree(dsn: str) -> None:
    from kiln.adapters.store.postgres import PostgresLedger

    errors: list[BaseException] = []

    def writer(name: str) -> None:
        store = PostgresLedger(dsn)
        try:
            for i in range(40):
                store.append([EventDraft(EventKind.TEST, name, details={"i": i})] * 3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            store.close()

    PostgresLedger(dsn).close()
    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    store = PostgresLedger(dsn)
    try:
        outcome = verify_log(store.entries(), [], head=store.head())
        assert isinstance(outcome, Verified) and outcome.size == 240
    finally:
        store.close()


def test_audit_services_work_unchanged_on_postgres(dsn: str, tmp_path: Path) -> None:
    from kiln.bootstrap.ledger import open_ledger
    from kiln.services import audit

    state = tmp_path / ".kiln"
    (state / "keys").mkdir(parents=True, mode=0o700)
    ledger = open_ledger(state, dsn=dsn)
    try:
        for i in range(10):
            ledger.store.record(EventKind.DEPLOY_START, actor="ci", environment="prod",
                                release=f"r{i}", details={"deployment": f"d{i}"})  # fmt: skip
        result = audit.verify(
            ledger.store,
            public_key=ledger.public_key(),
            checkpoint_dir=ledger.checkpoint_dir,
            signer=ledger.signer(),
        )
        assert result.ok and result.signed is not None and result.signed.size == 11
        proof = audit.prove(
            ledger.store, 3, signer=ledger.signer(), checkpoint_dir=ledger.checkpoint_dir
        )
        assert audit.verify_proof(proof.to_json(), public_key=ledger.public_key()).seq == 3
        out = tmp_path / "export.jsonl"
        audit.export(
            ledger.store, out, signer=ledger.signer(), checkpoint_dir=ledger.checkpoint_dir
        )
        assert audit.verify_export(out, public_key=ledger.public_key()).ok
        assert [d.release for d in audit.env_history(ledger.store, "prod")][:2] == ["r0", "r1"]
    finally:
        ledger.close()


def test_append_once_appends_each_idempotency_key_once(dsn: str) -> None:
    from kiln.adapters.store.postgres import PostgresLedger
    from kiln.core.ledger.outbox import IDEMPOTENCY_KEY

    store = PostgresLedger(dsn)
    try:
        with store._read() as cur:
            cur.execute("SELECT MAX(version) FROM schema_version WHERE component = 'ledger'")
            assert cur.fetchone()[0] == 2
        a, b, c = (
            EventDraft(EventKind.ROLLOUT_STEP, "c", details={"step": n, IDEMPOTENCY_KEY: f"d/{n}"})
            for n in (1, 2, 3)
        )
        assert store.append_once([a, a, b]) == [0, 0, 1]
        assert store.append_once([b, c]) == [1, 2]  # b is there already: only c is new
        assert [e.details["step"] for e in store.events()] == [1, 2, 3]
        with store._read() as cur:  # the lookup is an index search, not a scan
            cur.execute("SET enable_seqscan = off")
            cur.execute(
                "EXPLAIN SELECT seq FROM ledger_events"
                " WHERE ((body::jsonb) #>> '{details,idempotency_key}') = 'd/1'"
            )
            assert "ledger_events_idempotency" in str(cur.fetchall())
        outcome = verify_log(store.entries(), [], head=store.head())
        assert isinstance(outcome, Verified) and outcome.size == 3
    finally:
        store.close()
