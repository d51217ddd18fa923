"""Tampering with a real SQLite ledger file, the way an attacker with the file would.

Each test builds a ledger, saves a signed checkpoint (as ``kiln audit verify``
does), then edits ``state.db`` with the ``sqlite3`` command-line shell, dropping
the append-only triggers first, and checks that verification names the first
bad sequence number, through the service and through ``kiln audit verify``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from kiln.bootstrap.ledger import Ledger, open_ledger
from kiln.cli.main import main
from kiln.core.ledger.events import EventDraft, encode
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.merkle import leaf_hash
from kiln.core.ledger.verify import Tampered, Verified
from kiln.errors import Refused
from kiln.services import audit
from tests.integration.ledger.conftest import START, StepClock, fill

pytestmark = pytest.mark.integration

SQLITE = shutil.which("sqlite3")
needs_shell = pytest.mark.skipif(SQLITE is None, reason="the sqlite3 shell is not installed")

DROP = (
    "DROP TRIGGER ledger_events_no_update; DROP TRIGGER ledger_events_no_delete;"
    " DROP TRIGGER ledger_head_forward;"
)
EDIT_6 = """UPDATE ledger_events SET body = replace(body, '"n":6', '"n":66') WHERE seq = 6;"""


def shell(db: Path, *statements: str) -> None:
    """Run SQL in the sqlite3 shell, as an attacker with the file would."""
    assert SQLITE is not None
    script = "\n".join(statements)
    subprocess.run([SQLITE, str(db)], input=script, text=True, check=True, capture_output=True)


def checkpointed(ledger: Ledger, count: int = 20) -> None:
    fill(ledger, count)
    result = audit.verify(
        ledger.store,
        public_key=ledger.public_key(),
        checkpoint_dir=ledger.checkpoint_dir,
        signer=ledger.signer(),
    )
    assert result.ok and result.signed is not None


def reverify(state_dir: Path) -> Verified | Tampered:
    again = open_ledger(state_dir)
    try:
        return audit.verify(
            again.store,
            public_key=again.public_key(),
            checkpoint_dir=again.checkpoint_dir,
        ).outcome
    finally:
        again.close()


def cli_verify(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--state-dir", str(state_dir), "audit", "verify"])
    return code, capsys.readouterr().out


def test_the_store_refuses_update_and_delete(ledger: Ledger) -> None:
    fill(ledger, 3)
    conn = sqlite3.connect(ledger.store.path)
    for sql in (
        "UPDATE ledger_events SET body = 'x' WHERE seq = 1",
        "DELETE FROM ledger_events WHERE seq = 1",
        "DELETE FROM ledger_nodes",
        "UPDATE ledger_head SET size = 0",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    conn.close()
    assert ledger.store.size() == 3


def test_appending_keeps_seq_and_verifies(ledger: Ledger) -> None:
    assert ledger.store.append([EventDraft(EventKind.BUILD, "a")]) == [0]
    assert ledger.store.record(EventKind.TEST, actor="b") == 1
    assert [e.time for e in ledger.store.events()] == sorted(e.time for e in ledger.store.events())
    assert isinstance(reverify(ledger.state_dir), Verified)
    assert ledger.store.schema_version() == 2  # 2: the idempotency-key index (outbox)


@needs_shell
def test_an_edited_row_is_named(
    ledger: Ledger, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpointed(ledger)
    shell(
        ledger.store.path,
        DROP,
        EDIT_6,
    )
    outcome = reverify(state_dir)
    assert isinstance(outcome, Tampered) and outcome.seq == 6
    code, out = cli_verify(state_dir, capsys)
    assert code == 1
    assert out == (
        "ledger TAMPERED at seq 6: event 6 was edited: its bytes no longer match its hash\n"
    )
    code = main(["--state-dir", str(state_dir), "audit", "verify", "-o", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (report["ok"], report["firstBadSeq"], report["upto"]) == (False, 6, None)


@needs_shell
def test_an_edit_with_its_leaf_hash_recomputed_is_caught_by_the_tree(
    ledger: Ledger, state_dir: Path
) -> None:
    checkpointed(ledger)
    body = next(ledger.store.entries(6, 7)).leaf.replace(b'"n":6', b'"n":66')
    shell(
        ledger.store.path,
        DROP,
        f"UPDATE ledger_events SET body = '{body.decode()}',"  # noqa: S608 - the attack itself
        f" leaf_hash = X'{leaf_hash(body).hex()}' WHERE seq = 6;",
    )
    outcome = reverify(state_dir)
    assert isinstance(outcome, Tampered) and "rewritten" in outcome.reason
    assert outcome.seq <= 6 < (outcome.upto or 0)


@needs_shell
def test_a_deleted_row_is_named(
    ledger: Ledger, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpointed(ledger)
    shell(ledger.store.path, DROP, "DELETE FROM ledger_events WHERE seq = 4;")
    code, out = cli_verify(state_dir, capsys)
    assert code == 1
    assert out == "ledger TAMPERED at seq 4: seq 4 is missing (deleted)\n"


@needs_shell
def test_deleting_the_newest_rows_is_caught(ledger: Ledger, state_dir: Path) -> None:
    checkpointed(ledger)
    shell(ledger.store.path, DROP, "DELETE FROM ledger_events WHERE seq >= 18;")
    outcome = reverify(state_dir)
    assert isinstance(outcome, Tampered) and outcome.seq == 18


@needs_shell
def test_reordered_rows_are_named(
    ledger: Ledger, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpointed(ledger)
    shell(
        ledger.store.path,
        DROP,
        "CREATE TEMP TABLE t AS SELECT * FROM ledger_events WHERE seq IN (8, 9);"
        " UPDATE ledger_events SET body = (SELECT body FROM t WHERE seq = 9),"
        "   leaf_hash = (SELECT leaf_hash FROM t WHERE seq = 9) WHERE seq = 8;"
        " UPDATE ledger_events SET body = (SELECT body FROM t WHERE seq = 8),"
        "   leaf_hash = (SELECT leaf_hash FROM t WHERE seq = 8) WHERE seq = 9;",
    )
    code, out = cli_verify(state_dir, capsys)
    assert code == 1
    assert out == (
        "ledger TAMPERED at seq 8: position 8 holds the event of seq 9 (reordered or inserted)\n"
    )


@needs_shell
def test_an_inserted_row_is_named(ledger: Ledger, state_dir: Path) -> None:
    checkpointed(ledger)
    forged = encode(EventDraft(EventKind.APPROVAL, "mallory").at(5, START))
    shell(
        ledger.store.path,
        DROP,
        "UPDATE ledger_events SET seq = seq + 1000 WHERE seq >= 5;",
        "UPDATE ledger_events SET seq = seq - 999 WHERE seq >= 1000;",
        f"INSERT INTO ledger_events VALUES (5, '{forged.decode()}',"  # noqa: S608 - the attack
        f" X'{leaf_hash(forged).hex()}');",
    )
    outcome = reverify(state_dir)
    assert isinstance(outcome, Tampered) and outcome.seq == 6
    assert "holds the event of seq 5" in outcome.reason


def _forge_whole_database(original: Ledger, tmp: Path) -> Path:
    """Rebuild the log with event 7 changed and every hash, node and head recomputed."""
    forged_dir = tmp / "forged"
    forged_dir.mkdir()
    forged = open_ledger(forged_dir, clock=StepClock())
    drafts = []
    for event in original.store.events():
        details = dict(event.details)
        if event.seq == 7:
            details["n"] = 777
        drafts.append(
            EventDraft(event.kind, event.actor, event.artifact, event.environment,
                       event.release, event.links, details)
        )  # fmt: skip
    forged.store.append(drafts)
    forged.close()
    db = forged_dir / "state.db"
    shell(
        db,
        "DROP TRIGGER ledger_meta_no_update;",
        f"UPDATE ledger_meta SET value = '{original.store.origin.rsplit('/', 1)[1]}';",  # noqa: S608
    )
    return db


@needs_shell
def test_a_full_rewrite_is_caught_by_the_checkpoint_kept_outside_the_database(
    ledger: Ledger, state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpointed(ledger)
    saved = tmp_path / "saved.note"
    shutil.copy(ledger.checkpoint_dir / "latest.note", saved)
    forged_db = _forge_whole_database(ledger, tmp_path)
    ledger.close()
    for suffix in ("", "-wal", "-shm"):
        (state_dir / f"state.db{suffix}").unlink(missing_ok=True)
    shutil.copy(forged_db, state_dir / "state.db")

    # Nothing signs the forged history: export checks consistency before signing.
    code = main(["--state-dir", str(state_dir), "audit", "export", "--out", str(tmp_path / "x")])
    assert code == 1
    assert "refusing to sign" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

    # In itself the forged database is consistent: only a saved checkpoint exposes it.
    outcome = reverify(state_dir)
    assert isinstance(outcome, Tampered) and "rewritten" in outcome.reason
    assert outcome.seq <= 7 < (outcome.upto or 0)

    # Even with the checkpoint directory wiped, a checkpoint kept elsewhere catches it.
    shutil.rmtree(state_dir / "ledger")
    code = main(["--state-dir", str(state_dir), "audit", "verify", "--checkpoint", str(saved)])
    out = capsys.readouterr().out
    assert code == 1
    assert "ledger TAMPERED at seq 0..20" in out and "history was rewritten" in out


def test_a_refused_update_through_the_adapter_is_a_kiln_error(ledger: Ledger) -> None:
    fill(ledger, 1)
    with pytest.raises(Refused), ledger.store._write() as cur:
        cur.execute("DELETE FROM ledger_events")


@needs_shell
def test_a_damaged_merkle_node_is_found_by_deep_verify_and_never_yields_a_proof(
    ledger: Ledger, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpointed(ledger)  # 21 events: perfect nodes up to level 4
    shell(
        ledger.store.path,
        "DROP TRIGGER ledger_nodes_no_update;",
        "UPDATE ledger_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 1;",
    )
    code, out = cli_verify(state_dir, capsys)
    assert code == 0  # the events and the tree they imply are intact
    code = main(["--state-dir", str(state_dir), "audit", "verify", "--deep"])
    out = capsys.readouterr().out
    assert code == 1
    assert out == (
        "ledger TAMPERED at seq 4..7: the stored Merkle node (2, 1) over seq 4..7 is wrong: "
        "proofs through it would fail\n"
    )
    # A proof that would use the node is refused, not handed out wrong.
    assert main(["--state-dir", str(state_dir), "audit", "prove", "0"]) == 1
    assert "does not prove against the signed checkpoint" in capsys.readouterr().err
    assert main(["--state-dir", str(state_dir), "audit", "prove", "9"]) == 0
