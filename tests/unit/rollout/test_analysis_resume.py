"""An analysis step interrupted by a controller crash resumes its judges from the journal.

The executor runs against in-memory fakes (provider, router, ledger, journal)
and a clock the test moves; "a crash" is a second executor built on the same
stores, as a restarted controller is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kiln.adapters.store.desired import MIGRATIONS, SqliteDesiredState
from kiln.core.analysis.observations import (
    Counters,
    Gauge,
    Histogram,
    Missing,
    decode_reading,
    encode_reading,
)
from kiln.core.digest import digest_bytes
from kiln.core.rollout.planner import Phase
from kiln.core.spec.loader import load_spec
from kiln.services.analysis import AnalysisSession
from kiln.services.rollout import RolloutExecutor
from tests.unit.recorder import MemoryRecorder
from tests.unit.rollout.fakes import Clock, launcher
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.traffic.fake_router import FakeRouter

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: prod
    replicas: 2
    analysis:
      metrics:
        - {name: errors, metric: error-rate, judge: sequential, minSamples: 30}
    strategy:
      canary:
        steps:
          - setWeight: 50
          - analysis: {duration: 60s}
          - setWeight: 100
"""
)
V1, V2 = digest_bytes(b"v1"), digest_bytes(b"v2")


@dataclass
class FakeJournal:
    """The ``AnalysisJournal`` contract in memory: rounds numbered 0, 1, ... without gaps."""

    stored: dict[tuple[str, str, int], list[dict[str, Any]]] = field(default_factory=dict)

    def append_round(
        self,
        environment: str,
        deployment: str,
        step: int,
        seq: int,
        body: Mapping[str, Any],
        *,
        epoch: int | None = None,
    ) -> None:
        assert epoch is None, "this executor leads no term"
        rounds = self.stored.setdefault((environment, deployment, step), [])
        if seq < len(rounds):
            return  # the same round again: a no-op
        assert seq == len(rounds), "rounds are appended in order, without gaps"
        rounds.append(dict(body))

    def rounds(self, environment: str, deployment: str, step: int) -> list[dict[str, Any]]:
        return list(self.stored.get((environment, deployment, step), []))

    def forget_rounds(
        self,
        environment: str,
        *,
        keep: tuple[str, int] | None = None,
        epoch: int | None = None,
    ) -> None:
        assert epoch is None, "this executor leads no term"
        for key in list(self.stored):
            if key[0] == environment and (keep is None or key[1:] != keep):
                del self.stored[key]


@dataclass
class Rig:
    tmp: Path
    clock: Clock = field(default_factory=Clock)
    provider: FakeProvider = field(default_factory=FakeProvider)
    router: FakeRouter = field(default_factory=FakeRouter)
    ledger: MemoryRecorder = field(default_factory=MemoryRecorder)
    journal: FakeJournal | None = field(default_factory=FakeJournal)
    desired: SqliteDesiredState | None = None

    def executor(self) -> RolloutExecutor:
        """A controller process: a new executor (empty memory) on the same stores."""
        if self.desired is None:
            self.desired = SqliteDesiredState(self.tmp / "state.db")

        return RolloutExecutor(
            spec=SPEC,
            desired=self.desired,
            provider=self.provider,
            router=self.router,
            recorder=self.ledger,
            clock=self.clock,
            launcher=launcher(self.tmp),
            actor="test",
            journal=self.journal,
        )

    def serve(
        self, seconds: int, executor: RolloutExecutor, *, errors: int = 0, baseline_errors: int = 0
    ) -> None:
        """Traffic for ``seconds``: 50 requests a second to each side, one tick a second."""
        state = executor._desired.rollout("prod")
        assert state is not None and state.stable is not None
        for _ in range(seconds):
            self.router.record(state.candidate, requests=50, errors_5xx=errors)
            self.router.record(state.stable, requests=50, errors_5xx=baseline_errors)
            self.clock.advance(1.0)
            executor.tick("prod")


def into_analysis(rig: Rig) -> tuple[RolloutExecutor, float]:
    """v1 stable, v2 rolling out and inside its analysis step; (executor, step start)."""
    first = rig.executor()
    first.start("prod", V1)
    assert first.run("prod", timeout=10).phase is Phase.SUCCEEDED
    first.start("prod", V2)
    for _ in range(200):
        state = first.tick("prod").state
        if state.step == 1 and state.phase is Phase.STEPPING:
            break
    assert state.step == 1 and state.step_started is not None
    first.tick("prod")  # the session exists and took its first reading
    return first, state.step_started


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_a_restarted_controller_resumes_the_judges_and_keeps_the_deadline(rig: Rig) -> None:
    first, started = into_analysis(rig)
    rig.serve(20, first)
    before = first.analysis_figures("prod")["errors"]
    assert before["samples"] >= 900  # 20 s of 50 req/s reached the judge

    rig.clock.advance(5.0)  # the controller is down for 5 s; the router keeps counting
    state = first._desired.rollout("prod")
    assert state is not None
    rig.router.record(state.candidate, requests=250)
    rig.router.record(state.stable, requests=250)

    second = rig.executor()  # the restarted controller
    second.tick("prod")
    after = second.analysis_figures("prod")["errors"]
    assert after["samples"] == before["samples"] + 250  # kept, plus what the router counted
    resumed = second._desired.rollout("prod")
    assert resumed is not None and resumed.step_started == started  # same window
    notes = [e["details"].get("note", "") for e in rig.ledger.events]
    assert any("analysis continues with" in n for n in notes)

    # The step ends at its original deadline (started + 60 s), not 60 s after the restart.
    while (rig.clock.now().timestamp() - started) < 59.0:
        rig.serve(1, second)
        current = second._desired.rollout("prod")
        assert current is not None and current.step == 1, "no early end: pass_margin needs more"
    rig.serve(2, second)
    done = second._desired.rollout("prod")
    assert done is not None and done.step >= 2


def test_without_a_journal_the_interrupted_window_restarts(rig: Rig) -> None:
    rig.journal = None
    first, started = into_analysis(rig)
    rig.serve(10, first)
    second = rig.executor()
    second.tick("prod")
    resumed = second._desired.rollout("prod")
    assert resumed is not None and resumed.step_started is not None
    assert resumed.step_started > started
    notes = [e["details"].get("note", "") for e in rig.ledger.events]
    assert any("analysis window restarted" in n for n in notes)


def test_a_crash_before_the_first_round_restarts_the_window(rig: Rig) -> None:
    # No round journaled: no evidence and no cursor (the counters at the step's
    # start are unknown), so the window restarts rather than judge a stub.
    first = rig.executor()
    first.start("prod", V1)
    assert first.run("prod", timeout=10).phase is Phase.SUCCEEDED
    first.start("prod", V2)
    for _ in range(200):
        state = first.tick("prod").state
        if state.step == 1:
            break
    assert state.step == 1 and state.step_started is not None
    assert rig.journal is not None and rig.journal.rounds("prod", state.deployment, 1) == []
    rig.clock.advance(3.0)
    second = rig.executor()
    second.tick("prod")
    resumed = second._desired.rollout("prod")
    assert resumed is not None and resumed.step_started == rig.clock.now().timestamp()
    notes = [e["details"].get("note", "") for e in rig.ledger.events]
    assert any("analysis window restarted" in n for n in notes)


def test_resumed_judges_decide_exactly_as_uninterrupted_ones(rig: Rig) -> None:
    # A doubled error rate (2 errors a second against 1): the resumed executor
    # carries the same evidence on and fails the canary well before the deadline.
    first, started = into_analysis(rig)
    rig.serve(8, first, errors=2, baseline_errors=1)
    figures = first.analysis_figures("prod")["errors"]
    second = rig.executor()
    second.tick("prod")
    again = second.analysis_figures("prod")["errors"]
    assert again["log_evidence"] == pytest.approx(figures["log_evidence"])
    assert again["log_evidence"] > 0.5
    for _ in range(50):
        rig.serve(1, second, errors=2, baseline_errors=1)
        final = second._desired.rollout("prod")
        assert final is not None
        if final.phase is not Phase.STEPPING:
            break
    assert final.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    assert rig.clock.now().timestamp() - started < 45


def test_a_new_step_forgets_the_rounds_of_the_previous_one(rig: Rig) -> None:
    first, _ = into_analysis(rig)
    rig.serve(3, first)
    assert rig.journal is not None
    state = first._desired.rollout("prod")
    assert state is not None
    assert len(rig.journal.rounds("prod", state.deployment, 1)) >= 3
    rig.journal.forget_rounds("prod", keep=("other", 4))
    assert rig.journal.rounds("prod", state.deployment, 1) == []


@pytest.mark.parametrize(
    "reading",
    [
        Counters(12.5, 100, 3, Histogram((0.1, 0.5), (40, 90), 100)),
        Counters(1.0, 0, 0, None),
        Gauge(3.0, 0.25),
        Missing(4.0, "no series", error=True),
    ],
)
def test_readings_survive_the_journal(reading: object) -> None:
    assert decode_reading(encode_reading(reading)) == reading  # type: ignore[arg-type]


def test_the_sqlite_journal_keeps_rounds_in_order_and_across_reopening(tmp_path: Path) -> None:
    store = SqliteDesiredState(tmp_path / "state.db")
    assert store.schema_version() == MIGRATIONS[-1][0]
    store.append_round(
        "prod", "d1", 1, 0, {"errors": {"a": {"kind": "gauge", "at": 1, "value": 2}}}
    )
    store.append_round("prod", "d1", 1, 1, {"errors": {}})
    store.append_round("prod", "d1", 1, 1, {"errors": {"ignored": {}}})  # the same seq: no-op
    store.append_round("prod", "d0", 3, 0, {})
    store.close()
    again = SqliteDesiredState(tmp_path / "state.db")
    assert [len(r["errors"]) for r in again.rounds("prod", "d1", 1)] == [1, 0]
    again.forget_rounds("prod", keep=("d1", 1))
    assert again.rounds("prod", "d0", 3) == []
    assert len(again.rounds("prod", "d1", 1)) == 2
    again.close()


def test_a_database_made_before_versioning_migrates_in_place(tmp_path: Path) -> None:
    import sqlite3

    from kiln.adapters.store.desired import _SCHEMA

    db = sqlite3.connect(tmp_path / "state.db")
    db.executescript(_SCHEMA)
    db.execute("INSERT INTO rollouts (environment, state) VALUES ('prod', '{}')")
    db.commit()
    db.close()
    store = SqliteDesiredState(tmp_path / "state.db")
    assert store.schema_version() == MIGRATIONS[-1][0]
    store.append_round("prod", "d", 0, 0, {})
    assert store.rounds("prod", "d", 0) == [{}]
    store.close()


def test_a_session_rebuilt_from_its_rounds_has_the_same_cursor() -> None:
    metric = SPEC.environment("prod").analysis.metrics[0]
    session = AnalysisSession.start(
        step=1, canary="c", baseline="b", deadline=100.0, metrics=[metric]
    )
    kept: list[dict[str, Any]] = []

    class Source:
        n = 0

        def read(self, releases: Any, _metric: Any) -> dict[str, Counters]:
            self.n += 1
            return {r: Counters(float(self.n), 50 * self.n, self.n // 10) for r in releases}

    from kiln.core.spec.models import MetricSourceKind

    sources = {MetricSourceKind.ROUTER: Source()}
    for _ in range(30):
        session.poll(sources, now=1.0, record=lambda seq, body: kept.append(body))  # type: ignore[arg-type]
    rebuilt = AnalysisSession.resume(
        step=1, canary="c", baseline="b", deadline=100.0, metrics=[metric], rounds=kept
    )
    assert rebuilt.rounds == session.rounds == 30
    assert rebuilt.previous == session.previous
    assert rebuilt.figures() == session.figures()
