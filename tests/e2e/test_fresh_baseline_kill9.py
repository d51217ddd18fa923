"""kill -9 of the real controller during a canary with a fresh baseline, under load.

Killed in the middle of the analysis step, while the baseline group serves and
is judged against: the restarted controller resumes with the same baseline
instances (none started twice, none orphaned), the rollout succeeds with every
request served, and nothing of the baseline group is left afterwards. (One kill:
a controller restart takes ~15 s on the loaded 2-core machine; the kill at every
step boundary is test_controller_kill9.py's, without a baseline.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.bootstrap.runtime import provider
from kiln.core.rollout import baseline as fresh
from kiln.core.rollout.planner import Phase
from kiln.core.runtime.model import ENVIRONMENT, RELEASE, State
from tests.e2e.test_controller_kill9 import (
    CANARY,
    build_version,
    cli,
    environment,
    kill_controller,
    only_the_new_release_runs,
    release_v1,
    router_port,
)
from tests.e2e.test_rollout_executor import Traffic
from tests.project import make_project

pytestmark = pytest.mark.e2e

FRESH = CANARY.replace(
    "      canary:\n        steps:", "      canary:\n        baseline: fresh\n        steps:"
).replace("analysis: {duration: 20s}", "analysis: {duration: 12s}")
assert "baseline: fresh" in FRESH and "12s" in FRESH


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from make_project(tmp_path, monkeypatch, FRESH)


def group_ids(state_dir: Path, group: str) -> set[str]:
    return {
        i.id.value
        for i in provider("process", state_dir).list({ENVIRONMENT: "prod"})
        if i.labels.get(RELEASE) == group and i.state is State.RUNNING
    }


def test_kill9_with_a_fresh_baseline_resumes_with_the_same_baseline_instances(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = project / ".kiln"
    env = release_v1(project, capsys)
    stable = env["stable"]
    assert isinstance(stable, dict)
    group = fresh.name_for(stable["id"])
    v2 = build_version(project, capsys, "v2")

    desired = SqliteDesiredState(state_dir / "state.db")
    try:
        with Traffic(router_port(env["url"])) as traffic:
            code, _, err = cli(capsys, "deploy", "prod", v2, "--no-wait")
            assert code == 0, err
            deadline = time.monotonic() + 120
            while True:  # wait for the analysis step, with the group running
                assert time.monotonic() < deadline, "never reached the analysis step"
                state = desired.rollout("prod")
                assert state is not None and state.baseline == group
                if state.phase is Phase.STEPPING and state.step == 1:
                    break
                assert not state.phase.terminal, state.reason
                time.sleep(0.05)
            before = group_ids(state_dir, group)
            assert len(before) == 1  # as many as the canary: 50% of 2 replicas
            kill_controller(state_dir)  # in the middle of the analysis
            live = environment(capsys, "prod")["rollout"]
            assert isinstance(live, dict)
            assert live["baseline"] == {"kind": "fresh", "release": group, "instances": 1}
            while True:
                assert time.monotonic() < deadline, "rollout did not finish"
                state = desired.rollout("prod")
                assert state is not None
                if state.phase.terminal:
                    break
                if state.step == 1:
                    assert group_ids(state_dir, group) == before, "baseline started again"
                time.sleep(0.1)
            time.sleep(0.5)
        with capsys.disabled():
            print(f"\none kill mid-analysis: ok {traffic.ok}, failed {traffic.failures}")
        assert state.phase is Phase.SUCCEEDED, state.reason
        assert traffic.failures == [] and traffic.server_errors == 0
        assert traffic.ok > 100
    finally:
        desired.close()

    only_the_new_release_runs(state_dir, capsys)
