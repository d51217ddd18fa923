"""The executor records a transition's events through the outbox, in this order:
state and events saved together, then appended to the ledger, then cleared; and
what a crash left in the outbox goes to the ledger before anything new.

The ledger is an in-memory fake (``MemoryLedger``: ``Recorder`` and the keyed
``append_once`` on one list of events, checking the port's contract); the store
is the real SQLite desired state in a temporary file, wrapped to log its outbox
calls. A crash is the test's crash hook raising where ``KILN_FAULT`` would
SIGKILL, after which a new executor takes over the same store and ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.digest import digest_bytes
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.outbox import IDEMPOTENCY_KEY, key_of
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.core.spec.loader import load_spec
from kiln.ports.ledger import record_draft
from kiln.ports.state import PendingEvent, Signal
from kiln.services.outbox import EventOutbox
from kiln.services.rollout import AFTER_STATE_SAVE, RolloutExecutor
from tests.unit.recorder import MemoryRecorder
from tests.unit.rollout.fakes import Clock, launcher
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.traffic.fake_router import FakeRouter

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: dev
    replicas: 1
    strategy:
      canary:
        steps:
          - setWeight: 25
          - pause: {duration: 10s}
          - setWeight: 50
          - setWeight: 100
"""
)
V1, V2 = digest_bytes(b"v1"), digest_bytes(b"v2")
# What a transition records (through the outbox). Route changes and decommissions
# are recorded as they are done, after the transition; a crash before them means
# they are done (and recorded) by the next controller, as it converges.
TRANSITION_KINDS = {
    EventKind.DEPLOY_START,
    EventKind.ROLLOUT_STEP,
    EventKind.ANALYSIS_VERDICT,
    EventKind.DEPLOY_COMPLETE,
    EventKind.ROLLBACK,
}


class Crash(Exception):
    """Where the real process would be SIGKILLed."""


class MemoryLedger(MemoryRecorder):
    """``Recorder`` plus ``append_once``, on one list; ``calls`` logs the keyed appends."""

    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.calls = calls
        self.keys: dict[str, int] = {}

    def append_once(self, drafts: Sequence[EventDraft]) -> list[int]:
        keys = [key_of(d) for d in drafts]
        assert all(keys), "every event appended once carries its key"
        self.calls.append(("append", keys))
        out = []
        for key, draft in zip(keys, drafts, strict=True):
            assert key is not None
            if key not in self.keys:
                self.keys[key] = record_draft(self, draft)
            out.append(self.keys[key])
        return out

    def transitions(self) -> list[tuple[EventKind, str]]:
        return [(kind, text) for kind, text in self.plain() if kind in TRANSITION_KINDS]

    def plain(self) -> list[tuple[EventKind, str]]:
        """(kind, details without the key) of every event, in order; the random
        deployment ids named by their order (``#1``, ``#2``)."""
        names: dict[str, str] = {}
        out = []
        for e in self.events:
            details = {k: v for k, v in e["details"].items() if k != IDEMPOTENCY_KEY}
            text = json.dumps(details, sort_keys=True)
            deployment = details.get("deployment")
            if deployment:
                names.setdefault(deployment, f"#{len(names) + 1}")
                text = text.replace(deployment, names[deployment])
            out.append((e["kind"], text))
        return out


class LoggedStore(SqliteDesiredState):
    """The real store, logging its outbox calls to the shared list."""

    def __init__(self, path: Path, calls: list[tuple[str, Any]]) -> None:
        super().__init__(path)
        self.calls = calls

    def save_rollout_with_events(
        self, state: RolloutState, drafts: Sequence[EventDraft], *, epoch: int | None = None
    ) -> None:
        super().save_rollout_with_events(state, drafts, epoch=epoch)
        self.calls.append(("save", [str(d.kind) for d in drafts]))

    def clear_events(self, seqs: Sequence[int]) -> None:
        super().clear_events(seqs)
        self.calls.append(("clear", list(seqs)))

    def pending(self) -> list[PendingEvent]:
        return self.pending_events()


@dataclass
class Rig:
    tmp: Path
    clock: Clock = field(default_factory=Clock)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    provider: FakeProvider = field(default_factory=FakeProvider)
    router: FakeRouter = field(default_factory=FakeRouter)
    ledger: MemoryLedger = field(init=False)
    store: LoggedStore = field(init=False)

    def __post_init__(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.ledger = MemoryLedger(self.calls)
        self.store = LoggedStore(self.tmp / "state.db", self.calls)

    def executor(
        self, *, outbox: bool = True, crash: Callable[[str], None] | None = None
    ) -> RolloutExecutor:
        """A controller on this rig's store, ledger, provider and router (a restart
        gets a new one: nothing in memory survives but the fakes' world)."""
        return RolloutExecutor(
            spec=SPEC,
            desired=self.store,
            provider=self.provider,
            router=self.router,
            recorder=self.ledger,
            clock=self.clock,
            launcher=launcher(self.tmp),
            actor="test",
            outbox=EventOutbox(store=self.store, ledger=self.ledger) if outbox else None,
            crash_point=crash,
        )


def crash_at(n: int) -> Callable[[str], None]:
    """A crash hook that dies at the ``n``-th state save (1 = the first)."""
    seen = [0]

    def hit(point: str) -> None:
        assert point == AFTER_STATE_SAVE
        seen[0] += 1
        if seen[0] == n:
            raise Crash

    return hit


def drive(rig: Rig, executor: RolloutExecutor) -> RolloutState:
    for _ in range(100):
        state = executor.tick("dev").state
        if state.phase.terminal:
            return state
        rig.clock.advance(1.0)
    raise AssertionError("the rollout never ended")


def release(rig: Rig, executor: RolloutExecutor, artifact: str) -> RolloutState:
    executor.start("dev", artifact)  # type: ignore[arg-type]
    return drive(rig, executor)


def reference(tmp: Path, *, outbox: bool, every: bool = True) -> list[tuple[EventKind, str]]:
    """The events (``every``) or the transitions' events of v1 then v2 released
    with no crash."""
    rig = Rig(tmp)
    executor = rig.executor(outbox=outbox)
    release(rig, executor, V1)
    release(rig, executor, V2)
    return rig.ledger.plain() if every else rig.ledger.transitions()


def test_each_transition_is_saved_with_its_events_then_appended_then_cleared(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    executor = rig.executor()
    release(rig, executor, V1)
    release(rig, executor, V2)
    outbox_calls = [c for c in rig.calls if c[0] in {"save", "append", "clear"}]
    saves = [c for c in outbox_calls if c[0] == "save" and c[1]]
    assert len(saves) >= 6
    # Every save with events is followed at once by their keyed append and their clear.
    for i, (name, kinds) in enumerate(outbox_calls):
        if name == "save" and kinds:
            after = outbox_calls[i + 1 : i + 3]
            assert [(c[0], len(c[1])) for c in after] == [
                ("append", len(kinds)),
                ("clear", len(kinds)),
            ]
    assert rig.store.pending() == []
    keys = [
        e["details"][IDEMPOTENCY_KEY] for e in rig.ledger.events if IDEMPOTENCY_KEY in e["details"]
    ]
    assert len(keys) == len(set(keys))
    assert [int(k.rsplit("/", 1)[1]) for k in keys] == sorted(
        int(k.rsplit("/", 1)[1]) for k in keys
    )
    # Direct events (route changes, decommissions) carry no key; transitions all do.
    for event in rig.ledger.events:
        keyed = IDEMPOTENCY_KEY in event["details"]
        assert keyed == (
            event["kind"]
            in {EventKind.DEPLOY_START, EventKind.ROLLOUT_STEP, EventKind.DEPLOY_COMPLETE}
            or (event["kind"] is EventKind.ANALYSIS_VERDICT)
        ), event


def test_the_outbox_changes_no_event_and_no_order(tmp_path: Path) -> None:
    assert reference(tmp_path / "a", outbox=True) == reference(tmp_path / "b", outbox=False)


def story(rig: Rig, executor: RolloutExecutor) -> None:
    """Release v1 then v2; on a crash a new executor (a restarted controller: same
    store, ledger and world, nothing else) takes over the rollout in progress."""
    for artifact in (V1, V2):
        started = False
        while True:
            try:
                if not started:
                    started = True
                    executor.start("dev", artifact)
                drive(rig, executor)
                break
            except Crash:
                assert rig.store.pending(), "the crashed transition's events wait in the outbox"
                executor = rig.executor()


SAVES = 6  # state saves in the story (v1 then v2); each is crashed after once


@pytest.mark.parametrize("n", range(1, SAVES + 1))
def test_a_crash_after_any_state_save_loses_no_event_and_repeats_none(
    tmp_path: Path, n: int
) -> None:
    expected = reference(tmp_path / "ref", outbox=False, every=False)
    rig = Rig(tmp_path / "run")
    story(rig, rig.executor(crash=crash_at(n)))
    assert rig.store.pending() == []
    assert rig.ledger.transitions() == expected


def test_without_the_outbox_the_same_crash_loses_the_events(tmp_path: Path) -> None:
    expected = reference(tmp_path / "ref", outbox=False, every=False)
    rig = Rig(tmp_path / "run")
    executor = rig.executor(outbox=False, crash=crash_at(5))
    release(rig, executor, V1)
    with pytest.raises(Crash):
        executor.start("dev", V2)
        drive(rig, executor)
    drive(rig, rig.executor(outbox=False))
    assert len(rig.ledger.transitions()) < len(expected)


def test_a_crash_after_the_append_before_the_clear_repeats_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    executor = rig.executor()
    release(rig, executor, V1)
    events = len(rig.ledger.events)

    def dying_clear(seqs: Sequence[int]) -> None:
        raise Crash

    rig.store.clear_events = dying_clear  # type: ignore[method-assign]
    with pytest.raises(Crash):
        executor.start("dev", V2)
    assert len(rig.ledger.events) == events + 1  # deploy.start is in the ledger...
    assert len(rig.store.pending()) == 1  # ...and still in the outbox
    del rig.store.clear_events
    restarted = rig.executor()
    drive(rig, restarted)
    starts = [e for e in rig.ledger.events if e["kind"] is EventKind.DEPLOY_START]
    assert len(starts) == 2  # v1's and v2's, each once


def test_what_a_crash_left_goes_to_the_ledger_before_anything_new(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    executor = rig.executor(crash=crash_at(1))
    with pytest.raises(Crash):
        executor.start("dev", V1)
    assert rig.ledger.events == []
    restarted = rig.executor()
    # A reader (the API's status) flushes first, so it never sees a rollout whose
    # start is not in the ledger; a signal's own event comes after it.
    state = restarted.rollout("dev")
    assert state is not None
    assert [e["kind"] for e in rig.ledger.events] == [EventKind.DEPLOY_START]
    restarted.signal("dev", Signal.PROMOTE)
    assert [e["kind"] for e in rig.ledger.events] == [
        EventKind.DEPLOY_START,
        EventKind.ROLLOUT_STEP,
    ]


def test_a_tick_flushes_before_it_observes(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    with pytest.raises(Crash):
        rig.executor(crash=crash_at(1)).start("dev", V1)
    rig.calls.clear()
    rig.executor().tick("dev")
    assert rig.calls[0][0] == "append" and rig.calls[1] == ("clear", [1])
    assert rig.ledger.events[0]["kind"] is EventKind.DEPLOY_START


def test_the_crash_cases_cover_every_state_save_of_the_story(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    story(rig, rig.executor())
    assert len([c for c in rig.calls if c[0] == "save"]) == SAVES


def test_a_crash_right_after_the_last_transition_still_marks_its_release_stable(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    executor = rig.executor(crash=crash_at(3))  # v1: start, pause, succeeded
    executor.start("dev", V1)
    with pytest.raises(Crash):
        drive(rig, executor)
    state = rig.store.rollout("dev")
    assert state is not None and state.phase is Phase.SUCCEEDED
    assert rig.store.environment("dev").stable is None  # MarkStable never ran
    rig.executor().settle("dev")
    assert rig.store.environment("dev").stable == state.candidate
