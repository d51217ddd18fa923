"""The desired-state contract on both stores: SQLite (``state.db``) and a real PostgreSQL 15.

Every test takes ``backend``, a factory opening "the same" store again (the
same file, or the same database and namespace), so reopening is a restart of
the controller. Fencing is the unit tests' (tests/unit/state/test_fencing.py),
run here on both: a write carrying a stale epoch is refused in its own
transaction and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.adapters.store.pgdesired import PostgresDesiredState
from kiln.core.canonical import canonical_json
from kiln.core.digest import digest_bytes
from kiln.core.release import Release, ReleaseId
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.errors import IntegrityError, Refused, StaleLeader
from kiln.ports.state import Signal

pytestmark = pytest.mark.integration

Store = SqliteDesiredState | PostgresDesiredState
Opener = Callable[[], Store]

DOCUMENT = {"environment": "prod"}
RELEASE = Release.of("prod", digest_bytes(b"v1"), digest_bytes(canonical_json(DOCUMENT)))
V2 = Release.of("prod", digest_bytes(b"v2"), RELEASE.config)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[Store] = []
    if request.param == "sqlite":

        def open_store() -> Store:
            opened.append(SqliteDesiredState(tmp_path / "state.db"))
            return opened[-1]

    else:
        dsn: str = request.getfixturevalue("dsn")

        def open_store() -> Store:
            opened.append(PostgresDesiredState(dsn, namespace="hello"))
            return opened[-1]

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(backend: Opener) -> Store:
    return backend()


def _state(step: int) -> RolloutState:
    return replace(RolloutState.begin("prod", RELEASE.id, None, 1000.0), step=step)


def test_desired_state_survives_reopening(backend: Opener) -> None:
    store = backend()
    store.put_release(RELEASE, DOCUMENT)
    store.put_release(RELEASE, DOCUMENT)  # idempotent
    store.set_stable("prod", RELEASE.id)
    store.set_paused("prod", True)
    rollout = replace(_state(2), weight=25)
    store.save_rollout(rollout)
    store.signal("prod", Signal.PROMOTE)
    store.signal("prod", Signal.PROMOTE)
    store.close()

    again = backend()
    assert again.release(RELEASE.id) == RELEASE
    assert again.release_config(RELEASE.id) == DOCUMENT
    state = again.environment("prod")
    assert (state.stable, state.paused, state.pinned) == (RELEASE.id, True, None)
    assert again.rollout("prod") == rollout
    assert again.rollout("prod").phase is Phase.PROVISIONING  # type: ignore[union-attr]
    assert again.take_signals("prod") == frozenset({Signal.PROMOTE})
    assert again.take_signals("prod") == frozenset()
    assert again.environment("dev").stable is None
    assert again.rollout("dev") is None
    assert again.release(ReleaseId("nope")) is None
    assert again.release_config(ReleaseId("nope")) is None


def test_pins_pauses_and_the_stable_history_without_repeats(store: Store) -> None:
    store.set_pin("prod", RELEASE.id)
    store.set_paused("prod", True)
    store.set_paused("prod", False)
    for release in (RELEASE.id, RELEASE.id, V2.id, None, RELEASE.id):
        store.set_stable("prod", release)
    assert store.environment("prod").pinned == RELEASE.id
    assert store.environment("prod").paused is False
    assert store.stable_history("prod") == [RELEASE.id, V2.id, RELEASE.id]
    store.set_pin("prod", None)
    assert store.environment("prod").pinned is None
    store.put_release(Release.of("staging", digest_bytes(b"s"), RELEASE.config), DOCUMENT)
    assert store.environments() == ["prod", "staging"]


def test_a_config_document_must_match_its_digest(store: Store) -> None:
    with pytest.raises(IntegrityError, match="does not match digest"):
        store.put_release(RELEASE, {"environment": "staging"})
    assert store.release(RELEASE.id) is None


def test_the_analysis_journal_keeps_rounds_in_order_once(store: Store) -> None:
    store.append_round("prod", "d1", 1, 1, {"errors": {"b": 2}})
    store.append_round("prod", "d1", 1, 0, {"errors": {"a": 1}})
    store.append_round("prod", "d1", 1, 0, {"errors": {"changed": 9}})  # same seq: no-op
    store.append_round("prod", "d1", 2, 0, {"later": {}})
    store.append_round("dev", "d1", 1, 0, {"dev": {}})
    assert store.rounds("prod", "d1", 1) == [{"errors": {"a": 1}}, {"errors": {"b": 2}}]
    store.forget_rounds("prod", keep=("d1", 2))
    assert store.rounds("prod", "d1", 1) == []
    assert store.rounds("prod", "d1", 2) == [{"later": {}}]
    store.forget_rounds("prod")
    assert store.rounds("prod", "d1", 2) == []
    assert store.rounds("dev", "d1", 1) == [{"dev": {}}]  # per environment


def test_terms_only_go_up(backend: Opener) -> None:
    store = backend()
    assert store.term("prod") == 0
    store.open_term("prod", 1)
    store.open_term("prod", 5)
    for stale in (5, 4, 0):
        with pytest.raises(StaleLeader, match="not newer than term 5"):
            store.open_term("prod", stale)
    assert store.term("prod") == 5
    assert store.term("dev") == 0  # terms are per environment
    store.open_term("dev", 1)
    store.close()
    again = backend()
    assert again.term("prod") == 5
    with pytest.raises(StaleLeader):
        again.open_term("prod", 5)


WRITES: dict[str, Callable[[Store, int | None], object]] = {
    "save_rollout": lambda s, e: s.save_rollout(_state(2), epoch=e),
    "set_stable": lambda s, e: s.set_stable("prod", ReleaseId("other"), epoch=e),
    "put_release": lambda s, e: s.put_release(V2, DOCUMENT, epoch=e),
    "signal": lambda s, e: s.signal("prod", Signal.ABORT, epoch=e),
    "take_signals": lambda s, e: s.take_signals("prod", epoch=e),
    "append_round": lambda s, e: s.append_round("prod", "d1", 1, 1, {"late": {}}, epoch=e),
    "forget_rounds": lambda s, e: s.forget_rounds("prod", epoch=e),
}


def _snapshot(backend: Opener) -> tuple[Any, ...]:
    """Everything the writes touch, read through a second store (signals are only
    readable by taking them, so the second store takes and puts them back)."""
    other = backend()
    signals = other.take_signals("prod")
    for signal in signals:
        other.signal("prod", signal)
    snapshot = (
        other.rollout("prod"),
        other.environment("prod"),
        other.stable_history("prod"),
        other.release(V2.id),
        other.rounds("prod", "d1", 1),
        signals,
    )
    other.close()
    return snapshot


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_of_an_older_term_is_refused_and_changes_nothing(
    backend: Opener, store: Store, write: str
) -> None:
    store.open_term("prod", 1)
    store.put_release(RELEASE, DOCUMENT, epoch=1)
    store.save_rollout(_state(1), epoch=1)
    store.set_stable("prod", RELEASE.id, epoch=1)
    store.signal("prod", Signal.PROMOTE)  # an operator's signal, waiting for the leader
    store.append_round("prod", "d1", 1, 0, {"errors": {}}, epoch=1)
    store.open_term("prod", 2)  # a newer leader took over
    before = _snapshot(backend)
    with pytest.raises(StaleLeader, match="term 1 is over \\(current term 2\\)") as caught:
        WRITES[write](store, 1)
    assert isinstance(caught.value, Refused)  # exit code 1, like every refusal
    assert _snapshot(backend) == before
    WRITES[write](store, 2)  # the current term writes


@pytest.mark.parametrize("write", sorted(WRITES))
def test_an_epoch_no_term_was_opened_for_is_refused_too(store: Store, write: str) -> None:
    store.open_term("prod", 3)
    with pytest.raises(StaleLeader):
        WRITES[write](store, 4)


@pytest.mark.parametrize("write", sorted(WRITES))
def test_unfenced_writes_are_not_checked(store: Store, write: str) -> None:
    store.open_term("prod", 7)
    WRITES[write](store, None)
