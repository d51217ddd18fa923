"""Use case ``promote``: may this artifact enter this environment? Decide, sign, record.

An artifact enters environment N of the promotion path only when:

1. it is deployable (not revoked, complete: ``ensure_deployable``);
2. it ran healthy in environment N-1: the ledger holds a ``deploy.complete`` of
   it there that no later ``rollback`` of it undid (the first environment needs
   no such evidence);
3. every gate environment N lists passes (``kiln.core.gates.runner.evaluate``)
   over the evidence kiln holds: the trust verdict (with N's approval rule),
   the signed test-result attestations, the signed SBOM, the OSV database,
   the CEL rules, the artifact's tags, and the signed side-by-side measurement
   against what serves N now (``kiln.services.benchmark``; measured by
   ``kiln pipeline run`` and ``kiln pipeline promote``). Without that
   measurement a ``performance`` gate is ``Inconclusive`` and blocks.

Every decision is recorded: one ``gate.verdict`` event per gate, a signed
policy-verdict attestation, and a ``promotion`` event (``promoted`` or
``blocked`` with every reason). A blocked promotion raises ``Refused`` listing
every reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.core.attest.dsse import parse_envelope
from kiln.core.attest.policy import TrustPolicy
from kiln.core.attest.predicates import CYCLONEDX_BOM, POLICY_VERDICT_V1, TEST_RESULT_V1
from kiln.core.attest.statement import parse_statement, statement
from kiln.core.attest.verify import Verified
from kiln.core.digest import Digest, short
from kiln.core.gates.inputs import (
    AttestationCheck,
    GateInputs,
    NamingEvidence,
    PerfEvidence,
    Revocation,
    Sbom,
    TestCounts,
    TestEvidence,
    TestRecord,
    TrustEvidence,
    required_tests,
)
from kiln.core.gates.osv import Advisory
from kiln.core.gates.record import predicate as verdict_predicate
from kiln.core.gates.record import report_dict
from kiln.core.gates.runner import GateReport, evaluate
from kiln.core.gates.sbom import parse_sbom
from kiln.core.ledger.kinds import EventKind
from kiln.core.spec.models import GateName, ServiceSpec, TestKind
from kiln.errors import InvalidInput, NotFound, Refused
from kiln.ports.artifacts import ArtifactStore
from kiln.ports.attestations import AttestationStore
from kiln.ports.clock import Clock
from kiln.ports.keys import Signer
from kiln.ports.ledger import EventLog, Recorder
from kiln.services import artifacts as artifact_service
from kiln.services import benchmark
from kiln.services.attest import attest
from kiln.services.gates import load_osv, osv_path
from kiln.services.verify import environment_policy, find_environment, verify_artifact


@dataclass(frozen=True)
class Decision:
    """The outcome of one promotion check: every reason, and the gate report."""

    artifact: Digest
    environment: str
    previous: str | None
    problems: tuple[str, ...]
    report: GateReport

    @property
    def passed(self) -> bool:
        return not self.problems and self.report.passed

    @property
    def awaiting_approval(self) -> bool:
        """Blocked only because signed approvals are missing (nothing else is wrong)."""
        reasons = [r for res in self.report.blocking for r in res.verdict.reasons]
        return (
            not self.passed
            and not self.problems
            and bool(reasons)
            and all("approval" in r for r in reasons)
        )

    @property
    def reasons(self) -> list[str]:
        out = list(self.problems)
        for result in self.report.blocking:
            out.extend(f"{result.gate.value}: {reason}" for reason in result.verdict.reasons)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "environment": self.environment,
            "previous": self.previous,
            "passed": self.passed,
            "awaitingApproval": self.awaiting_approval,
            "reasons": self.reasons,
            "gates": report_dict(self.report)["gates"],
        }

    def to_error(self) -> Refused:
        lines = "\n".join(f"  - {r}" for r in self.reasons)
        return Refused(
            f"{short(self.artifact)} may not enter {self.environment}:\n{lines}",
            hint="fix what each reason names; `kiln pipeline run` shows every stage",
        )


@dataclass(frozen=True)
class Evidence:
    """Where promotion reads from: the stores, the trust policy and the ledger."""

    artifacts: ArtifactStore
    attestations: AttestationStore
    policy: TrustPolicy
    log: EventLog


def previous_environment(spec: ServiceSpec, environment: str) -> str | None:
    order = spec.path_order
    if environment not in order:
        return None
    index = order.index(environment)
    return order[index - 1] if index > 0 else None


def ran_healthy(log: EventLog, artifact: Digest, environment: str) -> bool:
    """A ``deploy.complete`` of ``artifact`` in ``environment`` not undone by a later rollback."""
    events = log.query(
        environment=environment,
        artifact=artifact,
        kinds=[EventKind.DEPLOY_COMPLETE, EventKind.ROLLBACK],
    )
    healthy = False
    for event in events:
        healthy = event.kind == EventKind.DEPLOY_COMPLETE
    return healthy


def _statements(digest: Digest, evidence: Evidence, verdict_refs: set[str]) -> list[dict[str, Any]]:
    """Statements of the artifact's attestations that verified against a trusted key."""
    out = []
    for item in evidence.attestations.for_subject(digest):
        if f"attestation {short(item.digest)}" not in verdict_refs:
            continue
        try:
            out.append(parse_statement(parse_envelope(item.raw).payload).to_json())
        except InvalidInput:
            continue
    return out


def _test_records(statements: list[dict[str, Any]]) -> tuple[TestRecord, ...]:
    """The newest signed result per (test, matrix)."""
    newest: dict[tuple[str, str], tuple[str, TestRecord]] = {}
    for stmt in statements:
        if stmt.get("predicateType") != TEST_RESULT_V1:
            continue
        p = stmt.get("predicate") or {}
        runner = p.get("runner") or {}
        counts = p.get("counts") or {}
        try:
            kind = TestKind(runner.get("kind", "unit"))
        except ValueError:
            continue
        matrix = {str(k): str(v) for k, v in (runner.get("matrix") or {}).items()}
        record = TestRecord(
            name=str(p.get("suite", "")),
            kind=kind,
            passed=p.get("result") == "passed",
            counts=TestCounts(
                int(counts.get("passed", 0)),
                int(counts.get("failed", 0)),
                int(runner.get("errors", 0)),
                int(counts.get("skipped", 0)),
            ),
            matrix=matrix,
            detail="; ".join(f.get("message", "") for f in p.get("failures") or []),
        )
        key = (record.name, json.dumps(matrix, sort_keys=True))
        finished = str(p.get("finishedOn", ""))
        if key not in newest or newest[key][0] <= finished:
            newest[key] = (finished, record)
    return tuple(r for _, r in newest.values())


def _sbom(statements: list[dict[str, Any]]) -> Sbom | None:
    for stmt in statements:
        if stmt.get("predicateType") == CYCLONEDX_BOM:
            raw = json.dumps(stmt.get("predicate") or {}).encode()
            return parse_sbom(raw, "the signed SBOM attestation")
    return None


def gather(
    spec: ServiceSpec,
    spec_dir: Path,
    digest: Digest,
    environment: str,
    evidence: Evidence,
    *,
    clock: Clock,
    perf: PerfEvidence | None = None,
) -> GateInputs:
    """Everything the gates read, from kiln's own stores."""
    env = find_environment(spec, environment)
    verdict = verify_artifact(
        digest, store=evidence.attestations, policy=environment_policy(evidence.policy, env)
    )
    checks = [
        AttestationCheck(a.predicate_type, True, ", ".join(a.signers)) for a in verdict.accepted
    ]
    if not isinstance(verdict, Verified):
        checks.extend(
            AttestationCheck("trust policy", False, None, reason.render())
            for reason in verdict.reasons
        )
    revoked = evidence.artifacts.revocation(digest)
    revocation = (
        Revocation(revoked.reason, revoked.actor, revoked.at) if revoked is not None else None
    )
    statements = _statements(digest, evidence, {a.ref for a in verdict.accepted})
    advisories: tuple[Advisory, ...] | None = None
    database = osv_path(spec_dir, spec, None)
    if database is not None and GateName.VULNERABILITIES in env.gates:
        advisories = tuple(load_osv(database))
    tags = tuple(str(t.tag) for t in evidence.artifacts.tags() if t.digest == digest)
    if perf is None and GateName.PERFORMANCE in env.gates:
        serving = benchmark.last_good(evidence.log, environment, now=clock.now())
        perf = benchmark.evidence_from(statements, environment, serving)
    return GateInputs(
        service=spec.service,
        artifact=digest,
        trust=TrustEvidence(digest, tuple(checks), revocation),
        tests=TestEvidence(required_tests(spec.tests), _test_records(statements)),
        sbom=_sbom(statements),
        advisories=advisories,
        database_label=str(database) if database else "",
        today=clock.now().date(),
        perf=perf,
        naming=NamingEvidence(spec.service, tags) if tags else None,
    )


def check(
    spec: ServiceSpec,
    spec_dir: Path,
    digest: Digest,
    environment: str,
    evidence: Evidence,
    *,
    clock: Clock,
) -> Decision:
    """Decide without recording anything (``kiln promote-check`` and the pipeline's preview)."""
    env = find_environment(spec, environment)
    problems: list[str] = []
    try:
        artifact_service.ensure_deployable(evidence.artifacts, digest)
    except (Refused, NotFound) as exc:
        problems.append(exc.message)
    previous = previous_environment(spec, environment)
    if previous is not None and not ran_healthy(evidence.log, digest, previous):
        problems.append(
            f"{short(digest)} has not run healthy in {previous} (no deploy.complete there "
            "that was not rolled back); deploy it there first"
        )
    inputs = gather(spec, spec_dir, digest, environment, evidence, clock=clock)
    report = evaluate(env, spec.policies, inputs)
    return Decision(digest, environment, previous, tuple(problems), report)


def promote(
    spec: ServiceSpec,
    spec_dir: Path,
    digest: Digest,
    environment: str,
    evidence: Evidence,
    *,
    clock: Clock,
    signer: Signer | None,
    recorder: Recorder,
    actor: str,
) -> Decision:
    """Check, then record the verdicts, sign them, and record the promotion; raise if blocked."""
    decision = check(spec, spec_dir, digest, environment, evidence, clock=clock)
    links: dict[str, str] = {}
    if signer is not None:
        body = verdict_predicate(decision.report, evaluated_at=clock.now().isoformat())
        body["promotion"] = {"previous": decision.previous, "problems": list(decision.problems)}
        stmt = statement([(spec.service, digest)], POLICY_VERDICT_V1, body)
        signed = attest(
            stmt, signer=signer, store=evidence.attestations, recorder=recorder, actor=actor
        )
        links["attestation"] = signed.digest
    for result in decision.report.results:
        recorder.record(
            EventKind.GATE_VERDICT,
            actor=actor,
            artifact=digest,
            environment=environment,
            links=links or None,
            details={
                "gate": result.gate.value,
                "outcome": result.verdict.outcome,
                "reasons": list(result.verdict.reasons),
                "environment": environment,
                "policy_digest": decision.report.policy_digest,
            },
        )
    recorder.record(
        EventKind.PROMOTION,
        actor=actor,
        artifact=digest,
        environment=environment,
        links=links or None,
        details={
            "outcome": "promoted" if decision.passed else "blocked",
            "from": decision.previous,
            "reasons": decision.reasons,
        },
    )
    if not decision.passed:
        raise decision.to_error()
    return decision
