"""Fencing in the state store and the route generations: a stale term changes nothing.

The store keeps each environment's current term; a write carrying any other
epoch is refused inside its own transaction (``StaleLeader``) and leaves every
table as it was. Route generations carry the term in their high bits, so a
table of a newer term outranks every table of an older one under the routers'
own generation rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.adapters.store.leader import FileLeaderLock
from kiln.core.canonical import canonical_json
from kiln.core.digest import digest_bytes
from kiln.core.release import Release, ReleaseId
from kiln.core.rollout.planner import RolloutState
from kiln.core.traffic.table import (
    TERM_SHIFT,
    Backend,
    RouteTable,
    must_install,
    next_generation,
)
from kiln.core.traffic.table import Release as RouteRelease
from kiln.errors import Refused, StaleLeader
from kiln.ports.state import Signal

DOCUMENT = {"environment": "prod"}
RELEASE = Release.of("prod", digest_bytes(b"v1"), digest_bytes(canonical_json(DOCUMENT)))


@pytest.fixture
def store(tmp_path: Path) -> SqliteDesiredState:
    return SqliteDesiredState(tmp_path / "state.db")


def test_terms_only_go_up(store: SqliteDesiredState) -> None:
    assert store.term("prod") == 0
    store.open_term("prod", 1)
    store.open_term("prod", 5)
    for stale in (5, 4, 0):
        with pytest.raises(StaleLeader, match="not newer than term 5"):
            store.open_term("prod", stale)
    assert store.term("prod") == 5
    assert store.term("dev") == 0  # terms are per environment
    store.open_term("dev", 1)


def _state(step: int) -> RolloutState:
    return replace(RolloutState.begin("prod", RELEASE.id, None, 1000.0), step=step)


WRITES: dict[str, Callable[[SqliteDesiredState, int | None], object]] = {
    "save_rollout": lambda s, e: s.save_rollout(_state(2), epoch=e),
    "set_stable": lambda s, e: s.set_stable("prod", ReleaseId("other"), epoch=e),
    "put_release": lambda s, e: s.put_release(
        Release.of("prod", digest_bytes(b"v2"), RELEASE.config), DOCUMENT, epoch=e
    ),
    "signal": lambda s, e: s.signal("prod", Signal.ABORT, epoch=e),
    "take_signals": lambda s, e: s.take_signals("prod", epoch=e),
    "append_round": lambda s, e: s.append_round("prod", "d1", 1, 1, {"late": {}}, epoch=e),
    "forget_rounds": lambda s, e: s.forget_rounds("prod", epoch=e),
}


def _snapshot(store: SqliteDesiredState) -> object:
    return (
        store.rollout("prod"),
        store.environment("prod"),
        store.stable_history("prod"),
        store.release(Release.of("prod", digest_bytes(b"v2"), RELEASE.config).id),
        store.rounds("prod", "d1", 1),
        store._db.execute("SELECT * FROM signals ORDER BY 1, 2").fetchall(),
    )


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_of_an_older_term_is_refused_and_changes_nothing(
    store: SqliteDesiredState, write: str
) -> None:
    store.open_term("prod", 1)
    store.put_release(RELEASE, DOCUMENT, epoch=1)
    store.save_rollout(_state(1), epoch=1)
    store.set_stable("prod", RELEASE.id, epoch=1)
    store.signal("prod", Signal.PROMOTE)  # an operator's signal, waiting for the leader
    store.append_round("prod", "d1", 1, 0, {"errors": {}}, epoch=1)
    store.open_term("prod", 2)  # a newer leader took over
    before = _snapshot(store)
    with pytest.raises(StaleLeader, match="term 1 is over \\(current term 2\\)") as caught:
        WRITES[write](store, 1)
    assert isinstance(caught.value, Refused)  # exit code 1, like every refusal
    assert _snapshot(store) == before
    WRITES[write](store, 2)  # the current term writes


@pytest.mark.parametrize("write", sorted(WRITES))
def test_an_epoch_no_term_was_opened_for_is_refused_too(
    store: SqliteDesiredState, write: str
) -> None:
    store.open_term("prod", 3)
    with pytest.raises(StaleLeader):
        WRITES[write](store, 4)


@pytest.mark.parametrize("write", sorted(WRITES))
def test_unfenced_writes_are_not_checked(store: SqliteDesiredState, write: str) -> None:
    store.open_term("prod", 7)
    WRITES[write](store, None)


def test_the_terms_table_survives_a_reopen(tmp_path: Path) -> None:
    store = SqliteDesiredState(tmp_path / "state.db")
    store.open_term("prod", 3)
    store.close()
    again = SqliteDesiredState(tmp_path / "state.db")
    assert again.term("prod") == 3
    with pytest.raises(StaleLeader):
        again.open_term("prod", 3)


# --- the file lock's epochs --------------------------------------------------------------


def test_a_file_lock_issues_one_above_the_stores_term_and_none_when_not_held(
    tmp_path: Path,
) -> None:
    lock = FileLeaderLock(tmp_path)
    assert lock.epoch("prod") is None
    assert lock.try_acquire("prod", above=6)
    assert lock.epoch("prod") == 7
    assert lock.try_acquire("prod", above=9) and lock.epoch("prod") == 7  # same term
    lock.release("prod")
    assert lock.epoch("prod") is None
    lock.close()


def test_a_lock_file_replaced_under_its_holder_makes_two_holders_and_only_one_term(
    tmp_path: Path,
) -> None:
    store = SqliteDesiredState(tmp_path / "state.db")
    old, new = FileLeaderLock(tmp_path), FileLeaderLock(tmp_path)
    assert old.try_acquire("prod", above=store.term("prod"))
    store.open_term("prod", old.epoch("prod") or 0)
    (tmp_path / "leader-prod.lock").unlink()  # a wiped run directory
    assert new.try_acquire("prod", above=store.term("prod"))  # flock cannot tell
    store.open_term("prod", new.epoch("prod") or 0)
    assert (old.epoch("prod"), new.epoch("prod"), store.term("prod")) == (1, 2, 2)
    with pytest.raises(StaleLeader):
        store.save_rollout(_state(1), epoch=old.epoch("prod"))
    old.close()
    new.close()


# --- route generations -------------------------------------------------------------------


def _table(generation: int, port: int = 9000) -> RouteTable:
    return RouteTable(generation, "prod", (RouteRelease("r1", 100, (Backend("127.0.0.1", port),)),))


@pytest.mark.parametrize(
    ("served", "epoch", "expected"),
    [
        (None, None, 1),  # unfenced: one above the served table
        (41, None, 42),
        (None, 1, 1 << TERM_SHIFT),  # the first table of term 1
        (7, 1, 1 << TERM_SHIFT),  # tables from before fencing are outranked
        ((1 << TERM_SHIFT) + 4, 1, (1 << TERM_SHIFT) + 5),  # the same term counts on
        ((1 << TERM_SHIFT) + 4, 3, 3 << TERM_SHIFT),  # a newer term starts above
    ],
)
def test_next_generation(served: int | None, epoch: int | None, expected: int) -> None:
    current = _table(served) if served is not None else None
    assert next_generation(current, epoch) == expected


def test_a_leader_facing_a_newer_terms_table_is_stale() -> None:
    with pytest.raises(StaleLeader, match=r"serves a table of term 2, newer than .* term 1"):
        next_generation(_table((2 << TERM_SHIFT) + 1), 1)


def test_a_stale_leaders_table_loses_against_its_successors() -> None:
    """The stale leader read the router before its successor pushed; its push after
    that is refused by the routers' own generation rule."""
    served = _table((1 << TERM_SHIFT) + 9)
    stale = _table(next_generation(served, 1), port=9001)
    successor = _table(next_generation(served, 2))
    assert must_install(served, successor)
    with pytest.raises(Refused, match="not newer than the served generation"):
        must_install(successor, stale)


def test_the_fencing_benchmark_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import bench_fencing

    monkeypatch.chdir(tmp_path)
    assert bench_fencing.main(["--quick"]) == 0
    payload = json.loads((tmp_path / ".bench" / "fencing.json").read_text())
    assert [row["case"] for row in payload["rows"]] == ["a rollout write", "a tick's reads"]
    assert all(row["ratio"] > 0 for row in payload["rows"])
