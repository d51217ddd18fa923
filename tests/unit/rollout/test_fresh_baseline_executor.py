"""The executor with a fresh baseline, over the fake provider and router: the
baseline group is launched from the stable release under its own name, routed at
the canary's weight, judged against, named in the ledger, and gone afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.digest import digest_bytes
from kiln.core.ledger.kinds import EventKind
from kiln.core.rollout import baseline as fresh
from kiln.core.rollout.planner import Decision
from kiln.core.runtime.model import ARTIFACT, RELEASE
from kiln.core.spec.loader import load_spec
from kiln.ports.clock import SystemClock
from kiln.services.rollout import RolloutExecutor
from tests.unit.recorder import MemoryRecorder
from tests.unit.rollout.fakes import launcher
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
        baseline: fresh
        steps:
          - setWeight: 50
          - analysis: {duration: 600ms}
          - setWeight: 100
"""
)


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    desired = SqliteDesiredState(tmp_path / "state.db")
    provider, router, recorder = FakeProvider(), FakeRouter(), MemoryRecorder()
    executor = RolloutExecutor(
        spec=SPEC,
        desired=desired,
        provider=provider,
        router=router,
        recorder=recorder,
        clock=SystemClock(),
        launcher=launcher(tmp_path),
        actor="test",
    )
    executor.start("prod", digest_bytes(b"v1"))
    assert str(executor.run("prod", timeout=10).phase) == "succeeded"
    yield executor, provider, router, recorder
    desired.close()


def serve(router: FakeRouter, canary: str, canary_errors: int) -> Any:
    """Each tick, pretend one request per weight point was served, split as routed."""
    tables: list[dict[str, int]] = []

    def on_decision(_: Decision) -> None:
        table = router.current()
        if table is None:
            return
        tables.append({r.name: r.weight for r in table.releases})
        for release in table.releases:
            if release.weight and release.backends:
                bad = canary_errors if release.name == canary else 0
                router.record(release.name, requests=release.weight, errors_5xx=bad)

    return tables, on_decision


def test_a_canary_is_judged_against_its_fresh_baseline_which_is_then_gone(rig: Any) -> None:
    executor, provider, router, recorder = rig
    v1 = executor._desired.environment("prod").stable
    baseline = fresh.name_for(v1)
    state = executor.start("prod", digest_bytes(b"v2"))
    assert state.baseline == baseline

    tables, on_decision = serve(router, state.candidate, canary_errors=0)
    done = executor.run("prod", timeout=20, on_decision=on_decision)

    assert str(done.phase) == "succeeded", done.reason
    assert {v1: 0, baseline: 50, state.candidate: 50} in tables
    # Launched from the stable release, under the group's own name.
    made = [spec for spec in provider.specs.values() if spec.release == baseline]
    assert len(made) == 1  # as many as the canary at 50% of 2 replicas
    stable_artifact = executor._desired.release(v1).artifact
    assert all(spec.artifact == stable_artifact for spec in made)
    # The judge's verdict names the fresh group and its instance count.
    verdicts = recorder.details(EventKind.ANALYSIS_VERDICT)
    assert verdicts[-1]["verdict"] == "pass"
    assert verdicts[-1]["baseline"] == {"kind": "fresh", "release": baseline, "instances": 1}
    # Nothing of the baseline is left: no instance, no route.
    assert not [i for i in provider.list() if i.labels[RELEASE] == baseline]
    assert baseline not in [r.name for r in router.current().releases]
    retired = [len(d["instances"]) for d in recorder.details(EventKind.DECOMMISSION)]
    assert retired == [1, 2]  # the baseline group, then the old stable release


def test_a_bad_canary_rolls_back_and_its_baseline_goes_with_it(rig: Any) -> None:
    executor, provider, router, recorder = rig
    v1 = executor._desired.environment("prod").stable
    baseline = fresh.name_for(v1)
    state = executor.start("prod", digest_bytes(b"v3"))

    _, on_decision = serve(router, state.candidate, canary_errors=20)
    done = executor.run("prod", timeout=20, on_decision=on_decision)

    assert str(done.phase) == "rolled-back", done.reason
    failed = recorder.details(EventKind.ANALYSIS_VERDICT)[-1]
    assert failed["verdict"] == "fail"
    assert failed["baseline"] == {"kind": "fresh", "release": baseline, "instances": 1}
    left = {i.labels[RELEASE] for i in provider.list()}
    assert left == {v1}
    assert {i.labels[ARTIFACT] for i in provider.list()} == {executor._desired.release(v1).artifact}
    assert [(r.name, r.weight) for r in router.current().releases] == [(v1, 100)]
