"""The outbox in ``state.db`` (desired-state schema v4) and the ledger's keyed append.

An existing v3 database gains the table on open and keeps its state, and a
replay of rows whose events already reached the ledger appends nothing twice.
The store's side of the contract (one transaction, order, numbers never reused,
fencing) runs on SQLite and PostgreSQL in
tests/integration/state/test_desired_backends.py.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from kiln.adapters.store import desired as desired_module
from kiln.adapters.store.desired import SqliteDesiredState
from kiln.adapters.store.sqlite import SqliteLedger
from kiln.core.digest import digest_bytes
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.outbox import IDEMPOTENCY_KEY, draft_from_json, draft_json, key_for
from kiln.core.ledger.verify import Verified, verify_log
from kiln.core.rollout.planner import RolloutState
from kiln.errors import InvalidInput
from kiln.services.outbox import EventOutbox

STATE = RolloutState.begin("prod", "prod-r2", "prod-r1", 1000.0)
STATE = replace(STATE, deployment="dep-abc")


def step(n: int) -> EventDraft:
    return EventDraft(
        EventKind.ROLLOUT_STEP,
        "controller:1",
        environment="prod",
        release="prod-r2",
        details={"deployment": "dep-abc", "step": n, "weights": {"prod-r1": 50, "prod-r2": 50}},
    )


def keyed(ledger: SqliteLedger) -> list[tuple[str, int]]:
    """(idempotency key, step) of every keyed event in the ledger, in ledger order."""
    return [
        (e.details[IDEMPOTENCY_KEY], e.details["step"])
        for e in ledger.events()
        if IDEMPOTENCY_KEY in e.details
    ]


def test_a_v3_database_gains_the_outbox_and_keeps_its_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "state.db"
    with monkeypatch.context() as patch:
        patch.setattr(desired_module, "MIGRATIONS", desired_module.MIGRATIONS[:3])
        old = SqliteDesiredState(db)
        assert old.schema_version() == 3
        old.open_term("prod", 5)
        old.save_rollout(STATE, epoch=5)
        old.close()
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert "outbox" not in tables
    store = SqliteDesiredState(db)
    assert store.schema_version() == 4
    assert store.rollout("prod") == STATE and store.term("prod") == 5
    store.save_rollout_with_events(replace(STATE, step=1), [step(1)], epoch=5)
    assert [p.draft for p in store.pending_events()] == [step(1)]
    store.close()
    assert SqliteDesiredState(db).schema_version() == 4  # reopening migrates nothing


def test_a_draft_survives_its_row_unchanged() -> None:
    draft = EventDraft(
        EventKind.DEPLOY_START,
        "ci",
        artifact=digest_bytes(b"a"),
        environment="prod",
        release="prod-r2",
        links={"config": digest_bytes(b"c")},
        details={"deployment": "dep-abc", "nested": {"b": [1, 2.5, None], "a": True}},
    )
    assert draft_from_json(draft_json(draft)) == draft
    with pytest.raises(InvalidInput):
        draft_from_json({"kind": "no-such-kind", "actor": "x"})
    with pytest.raises(InvalidInput):
        key_for("dep-abc", 0)


def test_append_once_appends_each_key_once_in_order(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "state.db")
    assert ledger.schema_version() == 2
    ledger.record(EventKind.BUILD, actor="ci")
    a = EventDraft(EventKind.ROLLOUT_STEP, "c", details={"step": 0, IDEMPOTENCY_KEY: "d/1"})
    b = EventDraft(EventKind.ROLLOUT_STEP, "c", details={"step": 1, IDEMPOTENCY_KEY: "d/2"})
    assert ledger.append_once([a, a, b]) == [1, 1, 2]  # a key twice in one batch: once
    assert ledger.append_once([a, b]) == [1, 2]  # both there already: nothing new
    c = EventDraft(EventKind.ROLLOUT_STEP, "c", details={"step": 2, IDEMPOTENCY_KEY: "d/3"})
    assert ledger.append_once([b, c]) == [2, 3]
    assert keyed(ledger) == [("d/1", 0), ("d/2", 1), ("d/3", 2)]
    with pytest.raises(InvalidInput):
        ledger.append_once([EventDraft(EventKind.ROLLOUT_STEP, "c")])
    assert ledger.size() == 4
    outcome = verify_log(ledger.rows(), [], head=ledger.head())
    assert isinstance(outcome, Verified) and outcome.size == 4


def test_a_v1_ledger_gains_the_key_index_and_keeps_its_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln.adapters.store import sqlite

    db = tmp_path / "state.db"
    with monkeypatch.context() as patch:
        patch.setattr(sqlite, "SQLITE", sqlite.SQLITE[:1])
        old = SqliteLedger(db)
        assert old.schema_version() == 1
        old.record(EventKind.BUILD, actor="ci")
        old.close()
    ledger = SqliteLedger(db)
    assert ledger.schema_version() == 2 and ledger.size() == 1
    plan = sqlite3.connect(db).execute(
        "EXPLAIN QUERY PLAN SELECT seq FROM ledger_events WHERE "
        "json_extract(CAST(body AS TEXT), '$.details.idempotency_key') = 'x'"
    )
    assert "ledger_events_idempotency" in str(plan.fetchall())


def test_a_replay_after_a_crash_between_append_and_clear_appends_nothing_twice(
    tmp_path: Path,
) -> None:
    store = SqliteDesiredState(tmp_path / "state.db")
    ledger = SqliteLedger(tmp_path / "state.db")

    class Crash(Exception):
        pass

    class CrashOnClear:
        """The store, dying once right after the ledger append (before the clear)."""

        def __init__(self) -> None:
            self.armed = True

        def save_rollout_with_events(self, *a: object, **kw: object) -> None:
            store.save_rollout_with_events(*a, **kw)  # type: ignore[arg-type]

        def pending_events(self) -> list[object]:
            return store.pending_events()  # type: ignore[return-value]

        def clear_events(self, seqs: list[int]) -> None:
            if self.armed:
                self.armed = False
                raise Crash
            store.clear_events(seqs)

    outbox = EventOutbox(store=CrashOnClear(), ledger=ledger)  # type: ignore[arg-type]
    outbox.save(STATE, [step(0), step(1)], epoch=None)
    with pytest.raises(Crash):
        outbox.flush()
    assert len(store.pending_events()) == 2  # still pending: the clear never ran
    outbox.save(replace(STATE, step=2), [step(2)], epoch=None)
    assert outbox.flush() == 3
    assert outbox.flush() == 0
    assert keyed(ledger) == [("dep-abc/1", 0), ("dep-abc/2", 1), ("dep-abc/3", 2)]
    outcome = verify_log(ledger.rows(), [], head=ledger.head())
    assert isinstance(outcome, Verified)


def test_the_outbox_benchmark_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from benchmarks import bench_outbox

    monkeypatch.chdir(tmp_path)
    assert bench_outbox.main(["--quick"]) == 0
    payload = json.loads((tmp_path / ".bench" / "outbox.json").read_text())
    assert [row["case"] for row in payload["rows"]] == [
        "transition, 1 event",
        "transition, 2 events",
        "a tick's reads (outbox empty)",
    ]
    assert all(row["ratio"] > 0 for row in payload["rows"])
