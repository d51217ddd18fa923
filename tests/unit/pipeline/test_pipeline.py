"""The pipeline's sequencing with fake stages, the test-output counter, and the CI files."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from kiln.cli.pipeline import run as run_command
from kiln.core.digest import Digest
from kiln.core.gates.inputs import TestCounts, TestRecord
from kiln.core.gates.runner import GateReport
from kiln.core.gates.verdict import Failed, GateResult, Passed
from kiln.core.spec.loader import load_spec
from kiln.core.spec.models import GateName
from kiln.core.spec.models import TestKind as Kind
from kiln.errors import InvalidInput, KilnError, Refused
from kiln.services.pipeline import Built, RunStatus, check_until, run_pipeline
from kiln.services.promotion import Decision
from kiln.services.testing import Outcome, count

DIGEST = Digest("sha256:" + "ab" * 32)
SPEC = load_spec(
    b"""
service: hello
build: {command: ["python", "app.py"], port: 8000}
tests: [{name: unit, command: ["python", "-m", "unittest"]}]
environments:
  - {name: dev}
  - {name: staging}
  - {name: prod, approvals: {required: 1}}
""",
    source="kiln.yaml",
)
NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _decision(env: str, *results: GateResult, problems: tuple[str, ...] = ()) -> Decision:
    return Decision(DIGEST, env, None, problems, GateReport(env, results, DIGEST))


PASS = GateResult(GateName.SIGNED, Passed())


class FakeStages:
    def __init__(self, *, tests_pass: bool = True, block: dict[str, Decision] | None = None):
        self.tests_pass = tests_pass
        self.block = block or {}
        self.calls: list[str] = []
        self.measure_error: KilnError | None = None

    def build(self) -> Built:
        self.calls.append("build")
        return Built(DIGEST, "hello:1.0.0-gabc1234")

    def attest(self, digest: Digest) -> list[str]:
        self.calls.append("attest")
        return ["sha256:" + "01" * 32]

    def test(self, digest: Digest) -> list[Outcome]:
        self.calls.append("test")
        record = TestRecord(
            "unit",
            Kind.UNIT,
            self.tests_pass,
            TestCounts(passed=1) if self.tests_pass else TestCounts(failed=1),
            detail="" if self.tests_pass else "exited 1",
        )
        return [Outcome(record, NOW, NOW, ("python",), 0 if self.tests_pass else 1)]

    def measure(self, digest: Digest, environment: str) -> dict[str, object]:
        self.calls.append(f"measure {environment}")
        if self.measure_error is not None:
            raise self.measure_error
        return {"environment": environment, "candidate": {"p95_ms": 1.0, "throughput_rps": 9.0}}

    def check(self, digest: Digest, environment: str) -> Decision:
        self.calls.append(f"check {environment}")
        return self.block.get(environment, _decision(environment, PASS))

    def refuse(self, digest: Digest, environment: str) -> KilnError:
        self.calls.append(f"refuse {environment}")
        return Refused("refused")

    def deploy(self, digest: Digest, environment: str) -> str:
        self.calls.append(f"deploy {environment}")
        return "succeeded"


def test_the_happy_path_deploys_every_environment_in_order() -> None:
    stages = FakeStages()
    run = run_pipeline(SPEC, stages)
    assert run.status is RunStatus.SUCCEEDED
    assert run.reached == ["dev", "staging", "prod"]
    assert stages.calls == [
        "build", "attest", "test",
        "check dev", "deploy dev", "check staging", "deploy staging", "check prod", "deploy prod",
    ]  # fmt: skip
    assert run.to_json()["artifact"] == DIGEST


def test_a_failing_test_is_stopped_by_the_tests_gate_which_records_it() -> None:
    failed = _decision("dev", GateResult(GateName.TESTS, Failed(("unit: exited 1",))))
    stages = FakeStages(tests_pass=False, block={"dev": failed})
    run = run_pipeline(SPEC, stages)
    assert run.status is RunStatus.BLOCKED
    assert stages.calls[-2:] == ["check dev", "refuse dev"]
    assert "deploy dev" not in stages.calls
    assert run.stages[2].outcome.value == "failed"
    assert run.stages[-1].reasons == ("tests: unit: exited 1",)


def test_a_missing_approval_pauses_with_its_own_status() -> None:
    waiting = _decision(
        "prod",
        GateResult(
            GateName.SIGNED,
            Failed(("trust policy attestation failed verification: requires approval …",)),
        ),
    )
    run = run_pipeline(SPEC, FakeStages(block={"prod": waiting}))
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert run.reached == ["dev", "staging"]
    suites = run.junit()
    assert suites[0].cases[-1].outcome.value == "skipped"


def test_until_stops_early_and_rejects_unknown_names() -> None:
    stages = FakeStages()
    assert run_pipeline(SPEC, stages, until="gate").reached == []
    assert "deploy dev" not in stages.calls
    assert run_pipeline(SPEC, FakeStages(), until="staging").reached == ["dev", "staging"]
    with pytest.raises(InvalidInput, match="neither a stage nor an environment"):
        check_until(SPEC, "qa")


def test_a_stage_error_fails_the_run_with_its_message() -> None:
    class Broken(FakeStages):
        def build(self) -> Built:
            raise InvalidInput("the tree is dirty")

    run = run_pipeline(SPEC, Broken())
    assert run.status is RunStatus.FAILED
    assert [s.name for s in run.stages] == ["build"]
    assert run.stages[0].reasons == ("the tree is dirty",)


@pytest.mark.parametrize(
    ("output", "code", "expected"),
    [
        ("Ran 3 tests in 0.01s\n\nOK\n", 0, TestCounts(3, 0, 0, 0)),
        (
            "Ran 4 tests in 0.1s\n\nFAILED (failures=1, errors=1, skipped=1)\n",
            1,
            TestCounts(1, 1, 1, 1),
        ),
        ("===== 5 passed, 2 failed, 1 skipped in 0.50s =====\n", 1, TestCounts(5, 2, 0, 1)),
        ("whatever\n", 0, TestCounts(passed=1)),
        ("whatever\n", 2, TestCounts(failed=1)),
    ],
)  # fmt: skip
def test_counts_come_from_the_runner_summary(output: str, code: int, expected: TestCounts) -> None:
    assert count(output, code) == expected


def test_the_ci_examples_use_only_flags_kiln_pipeline_run_has() -> None:
    ci = Path(__file__).resolve().parents[3] / "examples" / "ci"
    flow = YAML(typ="safe").load((ci / "github-actions.yml").read_text())
    gitlab = YAML(typ="safe").load((ci / "gitlab-ci.yml").read_text())
    lines = [
        s["run"]
        for s in flow["jobs"]["pipeline"]["steps"]
        if "kiln pipeline run" in s.get("run", "")
    ] + [" ".join(line for line in gitlab["pipeline"]["script"] if "kiln" in line)]
    known = {opt for p in run_command.params for opt in p.opts}
    known |= {"-o"}
    for line in lines:
        # GitHub's expression quotes a flag ('--until gate'): split those words too.
        words = " ".join(shlex.split(line.replace("${{", "").replace("}}", ""))).split()
        flags = {w.split("=")[0] for w in words if w.startswith("--")}
        assert flags, line
        assert flags <= known, flags - known


PERF_SPEC = load_spec(
    b"""
service: hello
environments:
  - {name: dev}
  - {name: prod, gates: [signed, tests, performance]}
""",
    source="kiln.yaml",
)


def test_an_environment_gated_on_performance_is_benchmarked_before_its_gates() -> None:
    stages = FakeStages()
    run = run_pipeline(PERF_SPEC, stages)
    assert run.status is RunStatus.SUCCEEDED
    assert stages.calls[3:] == [
        "check dev", "deploy dev", "measure prod", "check prod", "deploy prod",
    ]  # fmt: skip
    perf = next(s for s in run.stages if s.name == "perf prod")
    assert perf.data["candidate"] == {"p95_ms": 1.0, "throughput_rps": 9.0}


def test_a_benchmark_that_cannot_run_fails_the_run_with_its_reason() -> None:
    stages = FakeStages()
    stages.measure_error = Refused("the last good abc: the instance did not become ready")
    run = run_pipeline(PERF_SPEC, stages)
    assert run.status is RunStatus.FAILED
    assert run.stages[-1].name == "perf prod"
    assert run.stages[-1].reasons == ("the last good abc: the instance did not become ready",)
    assert "check prod" not in stages.calls
