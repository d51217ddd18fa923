"""Two processes appending to one SQLite ledger never share a seq or fork the tree."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln.adapters.store.sqlite import SqliteLedger
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.merkle import root_of
from kiln.core.ledger.verify import Verified, verify_log

pytestmark = pytest.mark.integration

WRITER = """
import json, sys, time
from pathlib import Path
from kiln.adapters.store.sqlite import SqliteLedger
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind

db, name, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = SqliteLedger(db)
# Start together: announce readiness, then wait for the parent's go.
(db.parent / f"ready-{name}").touch()
while not (db.parent / "go").exists():
    time.sleep(0.001)
seqs = []
for i in range(rounds):
    if i % 2:
        seqs += store.append([EventDraft(EventKind.TEST, name, details={"i": i, "j": j})
                              for j in range(5)])
    else:
        seqs.append(store.record(EventKind.BUILD, actor=name, details={"i": i}))
store.close()
print(json.dumps(seqs))
"""


def test_two_writers_get_distinct_seqs_and_one_tree(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SqliteLedger(db).close()  # migrate once, so both writers start from the same schema
    rounds = 100
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), name, str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    ready = [tmp_path / "ready-alpha", tmp_path / "ready-beta"]
    deadline = time.monotonic() + 60
    while not all(p.exists() for p in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    per_writer = rounds // 2 * 1 + rounds // 2 * 5
    assert [len(r) for r in results] == [per_writer, per_writer]
    assert set(results[0]).isdisjoint(results[1])
    assert sorted(results[0] + results[1]) == list(range(2 * per_writer))

    store = SqliteLedger(db)
    try:
        outcome = verify_log(store.entries(), [], head=store.head())
        assert isinstance(outcome, Verified) and outcome.size == 2 * per_writer
        actors = [e.actor for e in store.events()]
        assert {actors[s] for s in results[0]} == {"alpha"}
        assert {actors[s] for s in results[1]} == {"beta"}
        leaves = [e.stored_hash for e in store.entries()]
        assert store.head().root == root_of([h for h in leaves if h is not None])
    finally:
        store.close()


def test_readers_in_other_threads_never_see_an_uncommitted_append(tmp_path: Path) -> None:
    import threading

    from kiln.core.ledger.events import EventDraft
    from kiln.core.ledger.kinds import EventKind

    store = SqliteLedger(tmp_path / "state.db")
    try:
        store.append([EventDraft(EventKind.BUILD, "ci")])
        seen: list[int] = []
        with pytest.raises(RuntimeError), store._write() as cur:
            cur.execute("UPDATE ledger_head SET size = 2 WHERE id = 1")
            reader = threading.Thread(target=lambda: seen.append(store.size()))
            reader.start()
            reader.join(timeout=30)
            raise RuntimeError("roll the transaction back")
        assert seen == [1]
        assert store.size() == 1
    finally:
        store.close()


KILLED_WRITER = """
import sys
from pathlib import Path
from kiln.adapters.store.sqlite import SqliteLedger
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind

store = SqliteLedger(Path(sys.argv[1]))
batch = [EventDraft(EventKind.ROLLOUT_STEP, "w", details={"i": i}) for i in range(500)]
print("ready", flush=True)
while True:
    store.append(batch)
"""


def test_a_writer_killed_mid_append_leaves_whole_batches_and_a_valid_tree(
    tmp_path: Path,
) -> None:
    import signal

    db = tmp_path / "state.db"
    SqliteLedger(db).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            probe = SqliteLedger(db)
            try:
                if probe.size() >= 2000:
                    break
            finally:
                probe.close()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)  # no cleanup, no rollback: as on a crash
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    store = SqliteLedger(db)
    try:
        size = store.size()
        assert size >= 2000 and size % 500 == 0  # every batch all or nothing
        outcome = verify_log(store.rows(), [], head=store.head())
        assert isinstance(outcome, Verified) and outcome.size == size
        assert store.append([]) == [] and store.record(EventKind.HEAL, actor="after") == size
    finally:
        store.close()
