"""kill -9 of the real controller at every step boundary of a canary, under load.

The controller is the `kiln serve` process the CLI starts on demand, in a git copy
of examples/hello. While a canary runs, every time the persisted rollout changes
step or phase the test SIGKILLs the controller and lets the next CLI call start a
new one. The rollout must resume where it was (same deployment, the step never
goes backwards), end succeeded, serve every request (no transport error, no
502/503/504), and leave only the new release's instances, none orphaned.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.bootstrap.runtime import provider
from kiln.cli.main import main
from kiln.core.runtime.model import ENVIRONMENT, RELEASE, State
from tests.e2e.test_rollout_executor import Traffic
from tests.project import git, hello_spec, make_project

pytestmark = pytest.mark.e2e

CANARY = hello_spec(
    replicas=2,
    gates="this story is about rollouts; the pipeline's gates have their own tests",
    rest="""\
    analysis:
      metrics:
        - {name: errors, metric: error-rate, judge: sequential, minSamples: 30}
    strategy:
      canary:
        steps:
          - setWeight: 50
          - analysis: {duration: 20s}  # long enough to outlast a restart on a loaded machine
          - setWeight: 100
""",
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from make_project(tmp_path, monkeypatch, CANARY)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def build_version(project: Path, capsys: pytest.CaptureFixture[str], version: str) -> str:
    """Commit a visible change and build it; the digest."""
    if version != "v1":
        (project / "app.py").write_text((project / "app.py").read_text() + f"\n# {version}\n")
        git(project, "commit", "-qam", version)
    code, out, err = cli(capsys, "build", "-o", "json")
    assert code == 0, err
    digest: str = json.loads(out)["digest"]
    return digest


def release_v1(project: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """Build v1 and deploy it to prod, waiting for the rollout; prod's status after."""
    v1 = build_version(project, capsys, "v1")
    code, _, err = cli(capsys, "deploy", "prod", v1)
    assert code == 0, err
    return environment(capsys, "prod")


def environment(capsys: pytest.CaptureFixture[str], name: str) -> dict[str, object]:
    code, out, err = cli(capsys, "status", name, "-o", "json")
    assert code == 0, err
    (env,) = json.loads(out)["environments"]
    assert isinstance(env, dict)
    return env


def router_port(url: object) -> int:
    port = urlsplit(str(url)).port
    assert port is not None
    return port


def kill_controller(state_dir: Path) -> int:
    pid = int(json.loads((state_dir / "run" / "controller.json").read_text())["pid"])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        time.sleep(0.02)
    raise AssertionError(f"controller {pid} survived SIGKILL")


def only_the_new_release_runs(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After the rollout: its two instances, nothing else, no orphan."""
    env = environment(capsys, "prod")  # a live controller again: it ran recover()
    candidate = env["stable"]
    assert isinstance(candidate, dict)
    instances = provider("process", state_dir).list({ENVIRONMENT: "prod"})
    assert [i for i in instances if i.state is State.ORPHAN] == []
    running = [i for i in instances if i.state is State.RUNNING]
    assert {i.labels[RELEASE] for i in running} == {candidate["id"]}
    assert len(running) == 2


def test_kill9_at_every_step_boundary_resumes(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = project / ".kiln"
    url = release_v1(project, capsys)["url"]
    v2 = build_version(project, capsys, "v2")

    desired = SqliteDesiredState(state_dir / "state.db")
    kills: list[tuple[int, str]] = []
    try:
        with Traffic(router_port(url)) as traffic:
            code, _, err = cli(capsys, "deploy", "prod", v2, "--no-wait")
            assert code == 0, err
            first = desired.rollout("prod")
            assert first is not None
            deployment, seen = first.deployment, (first.step, str(first.phase))
            # The first boundary: the rollout was just persisted, nothing provisioned yet.
            kill_controller(state_dir)
            kills.append(seen)
            environment(capsys, "prod")  # any CLI call starts a new controller
            deadline = time.monotonic() + 150
            while True:
                assert time.monotonic() < deadline, f"rollout did not finish; kills {kills}"
                state = desired.rollout("prod")
                assert state is not None
                assert state.deployment == deployment, "the rollout restarted from scratch"
                assert state.step >= seen[0], f"step went back: {seen} -> {state.step}"
                now = (state.step, str(state.phase))
                if state.phase.terminal:
                    break
                if now != seen:
                    seen = now
                    kill_controller(state_dir)
                    kills.append(now)
                    environment(capsys, "prod")
                time.sleep(0.02)
            time.sleep(0.5)  # traffic keeps flowing on the final table
        with capsys.disabled():
            print(f"\nkills at (step, phase): {kills}; ok {traffic.ok}, failed {traffic.failures}")
        assert str(state.phase) == "succeeded", state.reason
        assert len(kills) >= 3
        assert traffic.failures == []
        assert traffic.server_errors == 0
        assert traffic.ok > 100
    finally:
        desired.close()

    only_the_new_release_runs(state_dir, capsys)


ANALYSIS = CANARY.replace("analysis: {duration: 20s}", "analysis: {duration: 22s}")
ANALYSIS_STEP, ANALYSIS_SECONDS = 1, 22.0


@pytest.fixture
def analysis_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from make_project(tmp_path, monkeypatch, ANALYSIS)


def samples(capsys: pytest.CaptureFixture[str]) -> float:
    rollout = environment(capsys, "prod")["rollout"]
    assert isinstance(rollout, dict)
    figures = rollout.get("analysis", {}).get("errors", {})
    return float(figures.get("samples", 0.0))


def canary_requests(rounds: list[dict[str, Any]], canary: str) -> int:
    """Canary requests the judge saw over the journal's rounds (cumulative counters)."""
    counts = [
        int(r["errors"][canary]["requests"])
        for r in rounds
        if r.get("errors", {}).get(canary, {}).get("kind") == "counters"
    ]
    return counts[-1] - counts[0] if counts else 0


def test_kill9_in_the_middle_of_an_analysis_step_resumes_its_judges(
    analysis_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The resumed step keeps its evidence and ends at its original deadline."""
    state_dir = analysis_project / ".kiln"
    url = release_v1(analysis_project, capsys)["url"]
    v2 = build_version(analysis_project, capsys, "v2")
    desired = SqliteDesiredState(state_dir / "state.db")
    try:
        with Traffic(router_port(url)) as traffic:
            code, _, err = cli(capsys, "deploy", "prod", v2, "--no-wait")
            assert code == 0, err
            deadline = time.monotonic() + 60
            while True:  # into the analysis step, with evidence
                assert time.monotonic() < deadline, "never reached the analysis step"
                state = desired.rollout("prod")
                assert state is not None and not state.phase.terminal, state
                started = state.step_started
                if state.step == ANALYSIS_STEP and started and time.time() - started >= 3.0:
                    break
                time.sleep(0.05)
            assert started is not None
            before = samples(capsys)
            assert before >= 30, "the judge had evidence before the crash"
            kill_controller(state_dir)
            kept = desired.rounds("prod", state.deployment, ANALYSIS_STEP)
            time.sleep(1.0)  # down for a while: the router keeps counting
            down = time.time()
            environment(capsys, "prod")  # starts a new controller
            restart = time.time() - down
            back = time.time()  # the new controller answers; its worker ticks at once
            while True:
                assert time.monotonic() < deadline + 60, "the analysis step never ended"
                state = desired.rollout("prod")
                assert state is not None
                assert state.step_started == started or state.step > ANALYSIS_STEP, (
                    "the window was restarted"
                )
                if state.step > ANALYSIS_STEP or state.phase.terminal:
                    ended = time.time()
                    break
                time.sleep(0.02)
            rounds = desired.rounds("prod", state.deployment, ANALYSIS_STEP)
            while not state.phase.terminal and time.monotonic() < deadline + 90:
                time.sleep(0.1)
                state = desired.rollout("prod")
                assert state is not None
        late = ended - (started + ANALYSIS_SECONDS)
        # Resumed: the step ends at its original deadline, or at once if the
        # controller came back after it. Restarted: it would end at back + 22 s.
        expected = max(started + ANALYSIS_SECONDS, back)
        judged = canary_requests(rounds, state.candidate)
        with capsys.disabled():
            print(
                f"\nsamples before the kill {before:.0f} ({len(kept)} rounds); the resumed step "
                f"judged {judged} canary requests over {len(rounds)} rounds; controller back in "
                f"{restart:.1f}s; step ended {late:+.2f}s from its original deadline; "
                f"ok {traffic.ok}, failed {traffic.failures}"
            )
        assert str(state.phase) == "succeeded", state.reason
        assert rounds[: len(kept)] == kept, "the evidence before the crash was kept"
        assert judged >= before
        assert late >= -0.2, "the step ended before its deadline"
        assert ended - expected < 1.5, "ended at restart + duration, not at the original deadline"
        assert traffic.failures == [] and traffic.server_errors == 0
    finally:
        desired.close()
