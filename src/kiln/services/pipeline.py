"""Use case ``pipeline run``: build → attest → test → (gates → deploy) per environment.

Before the gates of an environment that lists ``performance``, a ``perf ENV``
stage benchmarks the candidate against the environment's last good release
(``kiln.services.benchmark``) and signs the figures the gate then reads.

The run is a straight line of stages; each stage is a call on ``Stages`` (the
composition root supplies the real ones: the builder, the signer, the test
runner, the promotion check and the controller). The run stops at the first
stage that fails, at the first environment whose promotion is blocked (every
reason kept), or at an environment that waits for a signed manual approval.
Nothing here prints: ``on_stage`` is told when a stage starts and ends.

``until`` stops early: after ``build``, ``attest``, ``test``, ``gate`` (the
first environment's gates are checked, nothing is deployed) or after deploying
the named environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from kiln.core.digest import Digest
from kiln.core.pipeline.junit import Case, Suite
from kiln.core.pipeline.junit import Outcome as CaseOutcome
from kiln.core.spec.models import ServiceSpec
from kiln.errors import InvalidInput, KilnError
from kiln.services.benchmark import needs_measurement
from kiln.services.promotion import Decision
from kiln.services.testing import Outcome as TestOutcome

EARLY_STOPS = ("build", "attest", "test", "gate")


class StageOutcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    BLOCKED = "blocked"
    AWAITING_APPROVAL = "awaiting-approval"


class RunStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    AWAITING_APPROVAL = "awaiting-approval"


@dataclass(frozen=True)
class Stage:
    name: str
    outcome: StageOutcome
    seconds: float
    reasons: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "outcome": self.outcome.value,
            "seconds": round(self.seconds, 3),
            "reasons": list(self.reasons),
            **({"data": self.data} if self.data else {}),
        }


@dataclass(frozen=True)
class Built:
    digest: Digest
    tag: str | None


class Stages(Protocol):
    def build(self) -> Built: ...
    def attest(self, digest: Digest) -> list[str]: ...
    def test(self, digest: Digest) -> list[TestOutcome]: ...
    def measure(self, digest: Digest, environment: str) -> dict[str, Any]:
        """Benchmark against the environment's last good release, sign it; the medians."""
        ...

    def check(self, digest: Digest, environment: str) -> Decision: ...
    def refuse(self, digest: Digest, environment: str) -> KilnError:
        """Record the blocked promotion (verdicts, attestation, event); return its error."""
        ...

    def deploy(self, digest: Digest, environment: str) -> str:
        """Deploy through the controller and follow it; return the final phase."""
        ...


@dataclass
class Run:
    service: str
    stages: list[Stage] = field(default_factory=list)
    tests: list[TestOutcome] = field(default_factory=list)
    digest: str = ""
    tag: str | None = None
    status: RunStatus = RunStatus.SUCCEEDED
    reached: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "artifact": self.digest,
            "tag": self.tag,
            "status": self.status.value,
            "reached": list(self.reached),
            "stages": [s.to_json() for s in self.stages],
            "tests": [t.to_json() for t in self.tests],
        }

    def junit(self) -> list[Suite]:
        kind = {
            StageOutcome.PASSED: CaseOutcome.PASSED,
            StageOutcome.FAILED: CaseOutcome.FAILED,
            StageOutcome.BLOCKED: CaseOutcome.FAILED,
            StageOutcome.AWAITING_APPROVAL: CaseOutcome.SKIPPED,
        }
        stages = Suite(
            "pipeline",
            tuple(
                Case(
                    s.name,
                    kind[s.outcome],
                    s.seconds,
                    message=s.reasons[0] if s.reasons else "",
                    output="\n".join(s.reasons),
                )
                for s in self.stages
            ),
            properties={"artifact": self.digest} if self.digest else {},
        )
        tests = Suite(
            "tests",
            tuple(
                Case(
                    t.record.label,
                    CaseOutcome.PASSED if t.record.passed else CaseOutcome.FAILED,
                    t.seconds,
                    classname=f"tests.{t.record.kind.value}",
                    message=t.record.detail,
                    output=t.output,
                )
                for t in self.tests
            ),
        )
        return [stages, tests]


def check_until(spec: ServiceSpec, until: str | None) -> None:
    if until is None or until in EARLY_STOPS or until in spec.path_order:
        return
    raise InvalidInput(
        f"--until {until!r} is neither a stage nor an environment",
        hint=f"use one of {', '.join((*EARLY_STOPS, *spec.path_order))}",
    )


def run_pipeline(
    spec: ServiceSpec,
    stages: Stages,
    *,
    until: str | None = None,
    on_stage: Callable[[str, Stage | None], None] | None = None,
) -> Run:
    """Run the whole path; never raises for a failing stage (the ``Run`` says what stopped)."""
    check_until(spec, until)
    run = Run(spec.service)
    notify = on_stage or (lambda name, stage: None)

    def stage(name: str, work: Callable[[], Stage]) -> Stage:
        notify(name, None)
        started = time.monotonic()
        try:
            result = work()
        except KilnError as exc:
            result = Stage(name, StageOutcome.FAILED, 0.0, _lines(exc))
        result = Stage(
            result.name, result.outcome, time.monotonic() - started, result.reasons, result.data
        )
        run.stages.append(result)
        notify(name, result)
        return result

    def build() -> Stage:
        built = stages.build()
        run.digest, run.tag = built.digest, built.tag
        data = {"digest": built.digest, "tag": built.tag}
        return Stage("build", StageOutcome.PASSED, 0, data=data)

    def attest() -> Stage:
        made = stages.attest(Digest(run.digest))
        return Stage("attest", StageOutcome.PASSED, 0, data={"attestations": made})

    def test() -> Stage:
        run.tests = stages.test(Digest(run.digest))
        failed = [t for t in run.tests if not t.record.passed]
        reasons = tuple(f"{t.record.label}: {t.record.detail or 'failed'}" for t in failed)
        outcome = StageOutcome.FAILED if failed else StageOutcome.PASSED
        return Stage("test", outcome, 0, reasons, {"count": len(run.tests)})

    sequence: Sequence[tuple[str, Callable[[], Stage]]] = (
        ("build", build),
        ("attest", attest),
        ("test", test),
    )
    for name, work in sequence:
        done = stage(name, work)
        # A failing test does not stop the run here: the tests gate then blocks the
        # first promotion, and that verdict (with every reason) goes to the ledger.
        if done.outcome is not StageOutcome.PASSED and not (name == "test" and done.data):
            run.status = RunStatus.FAILED
            return run
        if until == name:
            run.status = (
                RunStatus.SUCCEEDED if done.outcome is StageOutcome.PASSED else (RunStatus.FAILED)
            )
            return run
    for environment in spec.path_order:
        if needs_measurement(spec, environment):
            # The performance gate's evidence: a side-by-side benchmark, signed. A
            # benchmark that cannot run (an instance that never gets ready, no `hey`)
            # stops the run here with its reason; the gate would only say "missing".
            measured = stage(f"perf {environment}", partial(_measure, stages, run, environment))
            if measured.outcome is not StageOutcome.PASSED:
                run.status = RunStatus.FAILED
                return run
        gate = stage(f"gate {environment}", partial(_gate, stages, run, environment))
        if gate.outcome is StageOutcome.AWAITING_APPROVAL:
            run.status = RunStatus.AWAITING_APPROVAL
            return run
        if gate.outcome is not StageOutcome.PASSED:
            run.status = RunStatus.BLOCKED
            return run
        if until == "gate":
            return run
        deployed = stage(f"deploy {environment}", partial(_deploy, stages, run, environment))
        if deployed.outcome is not StageOutcome.PASSED:
            run.status = RunStatus.FAILED
            return run
        run.reached.append(environment)
        if until == environment:
            return run
    return run


def _measure(stages: Stages, run: Run, environment: str) -> Stage:
    summary = stages.measure(Digest(run.digest), environment)
    return Stage(f"perf {environment}", StageOutcome.PASSED, 0, data=summary)


def _gate(stages: Stages, run: Run, environment: str) -> Stage:
    decision = stages.check(Digest(run.digest), environment)
    name = f"gate {environment}"
    data = decision.to_json()
    if decision.passed:
        return Stage(name, StageOutcome.PASSED, 0, data=data)
    error = stages.refuse(Digest(run.digest), environment)
    outcome = StageOutcome.AWAITING_APPROVAL if decision.awaiting_approval else StageOutcome.BLOCKED
    reasons = tuple(decision.reasons) or tuple(_lines(error))
    return Stage(name, outcome, 0, reasons, data)


def _deploy(stages: Stages, run: Run, environment: str) -> Stage:
    phase = stages.deploy(Digest(run.digest), environment)
    name = f"deploy {environment}"
    if phase == "succeeded":
        return Stage(name, StageOutcome.PASSED, 0, data={"phase": phase})
    return Stage(name, StageOutcome.FAILED, 0, (f"the rollout ended {phase}",), {"phase": phase})


def _lines(exc: KilnError) -> tuple[str, ...]:
    lines = [line.strip().removeprefix("- ") for line in exc.message.splitlines() if line.strip()]
    return tuple(lines)
