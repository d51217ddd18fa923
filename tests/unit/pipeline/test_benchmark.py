"""The performance gate's benchmark: which release is the baseline, teardown on any exit,
and which signed measurement the gate may read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kiln.core.attest.dsse import parse_envelope
from kiln.core.attest.predicates import PERFORMANCE_V1
from kiln.core.attest.statement import parse_statement
from kiln.core.digest import Digest
from kiln.core.gates.inputs import PerfEvidence, Side
from kiln.core.ledger.events import Event
from kiln.core.ledger.kinds import EventKind
from kiln.core.runtime.model import HealthResult, InstanceId, Unhealthy
from kiln.core.spec.loader import load_spec
from kiln.errors import Permanent
from kiln.services import benchmark
from kiln.services.testing import Target
from tests.unit.artifacts.fakes import FrozenClock
from tests.unit.recorder import MemoryRecorder
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.trust.fakes import MemorySigner, MemoryStore

A1 = Digest("sha256:" + "a1" * 32)
A2 = Digest("sha256:" + "a2" * 32)
CANDIDATE = Digest("sha256:" + "cc" * 32)
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
SPEC = load_spec(
    b"""
service: hello
policies:
  performance: {duration: 2s, rounds: 5, concurrency: 3}
environments:
  - name: dev
    gates: [signed, performance]
    config: {GREETING: hi}
    secrets: {TOKEN: {key: token}}
""",
    source="kiln.yaml",
)
FAST = Side((10.0, 11.0), (100.0, 99.0))


class Log:
    """An ``EventLog`` over a list: only ``query(environment=…)`` is used here."""

    def __init__(self, *events: tuple[EventKind, str, str | None, dict[str, Any]]) -> None:
        self.events = [
            Event(
                seq=i,
                time=NOW - timedelta(minutes=len(events) - i),
                kind=kind,
                actor="ci",
                artifact=artifact,
                environment="dev",
                release=release,
                links=details.pop("links", {}),
                details=details,
            )
            for i, (kind, release, artifact, details) in enumerate(events, 1)
        ]

    def query(self, *, environment: str | None = None, **_: object) -> list[Event]:
        return [e for e in self.events if environment in (None, e.environment)]


def _complete(release: str, artifact: Digest) -> tuple[EventKind, str, str, dict[str, Any]]:
    return (EventKind.DEPLOY_COMPLETE, release, artifact, {"weights": {release: 100}})


def test_the_last_good_release_is_what_serves_the_environment_now() -> None:
    assert benchmark.last_good(Log(), "dev", now=NOW) is None  # type: ignore[arg-type]
    log = Log(_complete("r1", A1), _complete("r2", A2))
    assert benchmark.last_good(log, "dev", now=NOW) == A2  # type: ignore[arg-type]
    rolled_back = Log(
        _complete("r1", A1),
        (EventKind.DEPLOY_START, "r2", A2, {"deployment": "d2"}),
        (
            EventKind.ROLLBACK,
            "r2",
            A2,
            {"links": {"previous_release": "r1"}, "weights": {"r1": 100}},
        ),
    )
    assert benchmark.last_good(rolled_back, "dev", now=NOW) == A1  # type: ignore[arg-type]


def _target(digest: Digest) -> Target:
    image = {"config": {"Cmd": ["python", "app.py"], "ExposedPorts": {"8000/tcp": {}}}}
    return Target("hello", digest, Path("/nonexistent"), image)


class Recording:
    """A ``measure`` stand-in: remembers its call, returns fixed figures or raises."""

    def __init__(self, provider: FakeProvider, fail: BaseException | None = None) -> None:
        self.provider = provider
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self,
        candidate_url: str,
        baseline_url: str | None,
        *,
        duration: float,
        rounds: int,
        concurrency: int,
        on_progress: Callable[[str], None] | None,
        warmup: float,
    ) -> PerfEvidence:
        live = len(self.provider.instances)
        self.calls.append(
            {"urls": (candidate_url, baseline_url), "settings": (duration, rounds, concurrency),
             "warmup": warmup, "live": live}
        )  # fmt: skip
        if self.fail is not None:
            raise self.fail
        return PerfEvidence(FAST, FAST if baseline_url else None, baseline_url is None)


def test_both_sides_run_on_fresh_instances_with_the_spec_settings_then_are_destroyed() -> None:
    provider = FakeProvider()
    measure = Recording(provider)
    said: list[str] = []
    measured = benchmark.run_side_by_side(
        SPEC.environment("dev"), _target(CANDIDATE), _target(A1),
        spec=SPEC, provider=provider, clock=FrozenClock(NOW), measure=measure,
        on_progress=said.append,
    )  # fmt: skip
    (call,) = measure.calls
    assert call["live"] == 2 and call["urls"][0] != call["urls"][1]
    assert call["settings"] == (2.0, 5, 3) and call["warmup"] == 1.0
    assert provider.instances == {} and len(provider.destroyed) == 2
    specs = list(provider.specs.values())
    assert [s.artifact for s in specs] == [A1, CANDIDATE]  # the last good starts first
    assert all(s.environment == "perf" and s.secrets == () for s in specs)  # never its secrets
    assert all(s.config == {"GREETING": "hi"} for s in specs)
    assert measured.baseline == A1 and measured.candidate == CANDIDATE
    assert said[0].startswith("starting a fresh instance of the last good")
    assert said[-1] == "stopping the benchmark instances"
    assert measured.summary()["last_good"] == {"p95_ms": 10.5, "throughput_rps": 99.5}


@pytest.mark.parametrize("error", [KeyboardInterrupt(), Permanent("hey failed")])
def test_instances_are_destroyed_on_ctrl_c_and_on_errors(error: BaseException) -> None:
    provider = FakeProvider()
    with pytest.raises(type(error)):
        benchmark.run_side_by_side(
            SPEC.environment("dev"), _target(CANDIDATE), _target(A1),
            spec=SPEC, provider=provider, clock=FrozenClock(NOW),
            measure=Recording(provider, error),
        )  # fmt: skip
    assert provider.instances == {} and len(provider.destroyed) == 2


def test_a_side_that_never_gets_ready_is_named_and_nothing_is_left() -> None:
    class NeverReady(FakeProvider):
        def wait_ready(
            self, instances: Sequence[InstanceId], *, timeout: float, interval: float = 0.02
        ) -> dict[InstanceId, HealthResult]:
            return {i: Unhealthy(i, "connection refused") for i in instances}

    provider = NeverReady()
    with pytest.raises(Permanent, match=r"the last good a1a1a1a1a1a1: .*connection refused"):
        benchmark.run_side_by_side(
            SPEC.environment("dev"), _target(CANDIDATE), _target(A1),
            spec=SPEC, provider=provider, clock=FrozenClock(NOW), measure=Recording(provider),
        )  # fmt: skip
    assert provider.instances == {}


def _measure_and_sign(log: Log) -> tuple[MemoryStore, MemoryRecorder, benchmark.Measurement]:
    provider, store, recorder = FakeProvider(), MemoryStore(), MemoryRecorder()
    measured, digest = benchmark.measure_for_promotion(
        SPEC, "dev", CANDIDATE,
        log=log, target_of=_target, provider=provider, clock=FrozenClock(NOW),  # type: ignore[arg-type]
        signer=MemorySigner(1), store=store, recorder=recorder, actor="ci",
        measure=Recording(provider),
    )  # fmt: skip
    assert digest in store.blobs
    return store, recorder, measured


def _statements(store: MemoryStore) -> list[dict[str, Any]]:
    return [
        parse_statement(parse_envelope(item.raw).payload).to_json()
        for item in store.for_subject(CANDIDATE)
    ]


def test_the_signed_measurement_is_what_the_gate_reads_while_the_baseline_still_serves() -> None:
    serving = Log(_complete("r1", A1))
    store, recorder, _ = _measure_and_sign(serving)
    statements = _statements(store)
    (stmt,) = statements
    assert stmt["predicateType"] == PERFORMANCE_V1
    assert stmt["predicate"]["baseline"] == A1 and stmt["predicate"]["environment"] == "dev"
    assert recorder.events[0]["kind"] is EventKind.ATTEST
    found = benchmark.evidence_from(statements, "dev", A1)
    assert found == PerfEvidence(FAST, FAST, first_release=False)
    # stale once something else serves dev; never read for another environment
    assert benchmark.evidence_from(statements, "dev", A2) is None
    assert benchmark.evidence_from(statements, "prod", A1) is None
    assert benchmark.evidence_from(statements, "dev", None) is None


def test_no_last_good_release_is_recorded_as_no_baseline() -> None:
    store, _, measured = _measure_and_sign(Log())
    assert measured.baseline is None and "last_good" not in measured.summary()
    found = benchmark.evidence_from(_statements(store), "dev", None)
    assert found is not None and found.baseline is None and found.first_release
