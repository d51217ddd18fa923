"""The gate runner, its report, and the payloads recorded for each verdict.

The acceptance cases of issue 8 are here at gate level: a prod environment
with every gate, all evidence good, then one thing broken at a time; the
report must block on exactly that gate and its text must print the reason.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from kiln.core.gates.inputs import (
    CYCLONEDX_BOM,
    SLSA_PROVENANCE_V1,
    AttestationCheck,
    GateInputs,
    NamingEvidence,
    PerfEvidence,
    Revocation,
    Side,
    TestCounts,
    TestEvidence,
    TestRecord,
    TrustEvidence,
    required_tests,
)
from kiln.core.gates.osv import Advisory
from kiln.core.gates.record import (
    EVENT_KIND,
    POLICY_VERDICT_V1,
    event_details,
    events,
    predicate,
    render_text,
    report_dict,
)
from kiln.core.gates.runner import GateReport, evaluate, policy_digest
from kiln.core.gates.verdict import Failed, Inconclusive, Passed
from kiln.core.ledger.kinds import EventKind
from kiln.core.spec import models
from kiln.core.spec.models import GateName, ServiceSpec

from .conftest import TODAY, sbom, spec_of

ART = "sha256:" + "cd" * 32
ALL_GATES = [g.value for g in GateName]

SPEC: ServiceSpec = spec_of(
    {
        "service": "hello",
        "tests": [{"name": "unit", "command": ["pytest"]}],
        "policies": {
            "vulnerabilities": {"threshold": "high"},
            "licenses": {
                "allow": ["Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "MIT", "MPL-2.0"],
                "deny": ["GPL-3.0-only"],
            },
            "rules": [
                {
                    "name": "no-debug-in-prod",
                    "expr": "!(has(config.DEBUG) && config.DEBUG == true)",
                    "message": "DEBUG must be off in prod",
                    "environments": ["prod"],
                },
                {"name": "ha", "expr": "env.replicas >= 2", "environments": ["prod"]},
            ],
        },
        "environments": [
            {"name": "dev", "gates": ["signed"]},
            {"name": "prod", "replicas": 2, "config": {"DEBUG": False}, "gates": ALL_GATES},
        ],
    }
)
PROD = SPEC.environment("prod")


def good_inputs(advisories: tuple[Advisory, ...]) -> GateInputs:
    return GateInputs(
        service="hello",
        artifact=ART,
        trust=TrustEvidence(
            ART,
            (
                AttestationCheck(SLSA_PROVENANCE_V1, True, "ci"),
                AttestationCheck(CYCLONEDX_BOM, True, "ci"),
            ),
        ),
        tests=TestEvidence(
            required_tests(SPEC.tests),
            (TestRecord("unit", models.TestKind.UNIT, True, TestCounts(passed=12)),),
        ),
        sbom=sbom("clean"),
        advisories=advisories,
        today=TODAY,
        perf=PerfEvidence(
            Side((10.0, 10.5, 10.2), (200.0, 198.0, 201.0)),
            Side((10.1, 10.3, 10.0), (199.0, 202.0, 200.0)),
        ),
        naming=NamingEvidence("hello", ("hello:1.4.0-g1a2b3c4",)),
    )


def test_all_good_evidence_passes_every_gate(advisories: tuple[Advisory, ...]) -> None:
    report = evaluate(PROD, SPEC.policies, good_inputs(advisories))
    assert [r.gate for r in report.results] == list(GateName)
    assert report.passed, render_text(report)
    assert render_text(report).endswith("result: PASSED")


def _bad_test(i: GateInputs) -> GateInputs:
    failing = TestRecord(
        "unit", models.TestKind.UNIT, False, TestCounts(passed=11, failed=1), detail="test_home"
    )
    assert i.tests is not None
    return dataclasses.replace(i, tests=TestEvidence(i.tests.required, (failing,)))


def _env(**changes: Any) -> Any:
    return PROD.model_copy(update=changes)


ACCEPTANCE = [
    (
        "a failing test",
        _bad_test,
        None,
        GateName.TESTS,
        "unit (unit) failed (11 passed, 1 failed, 0 errors): test_home",
    ),
    (
        "a dependency with a known vulnerability",
        lambda i: dataclasses.replace(i, sbom=sbom("vulnerable")),
        None,
        GateName.VULNERABILITIES,
        "requests@2.90.1 is affected by KILN-2026-0001 (CVE-2999-10001), severity critical",
    ),
    (
        "a dependency whose license is denied",
        lambda i: dataclasses.replace(i, sbom=sbom("denied-license")),
        None,
        GateName.LICENSES,
        "copyleft-thing@1.0.0 (GPL-3.0-only): GPL-3.0-only is denied",
    ),
    (
        "a CEL rule violated in prod",
        lambda i: i,
        {"config": {"DEBUG": True}},
        GateName.RULES,
        "rule no-debug-in-prod: DEBUG must be off in prod",
    ),
    (
        "a 2x latency regression against the last good release",
        lambda i: dataclasses.replace(
            i,
            perf=PerfEvidence(
                Side((20.0, 21.0, 20.4), (200.0,) * 3), Side((10.0, 10.2, 10.1), (200.0,) * 3)
            ),
        ),
        None,
        GateName.PERFORMANCE,
        "p95 latency ratio 2.02x exceeds the budget 1.25x",
    ),
    (
        "an unsigned artifact",
        lambda i: dataclasses.replace(i, trust=TrustEvidence(ART, ())),
        None,
        GateName.SIGNED,
        f"unsigned: no {SLSA_PROVENANCE_V1} attestation for {ART}",
    ),
    (
        "a revoked artifact",
        lambda i: dataclasses.replace(
            i,
            trust=dataclasses.replace(
                i.trust, revocation=Revocation("leaked key in image", by="sec-team")
            ),
        ),
        None,
        GateName.SIGNED,
        f"artifact {ART} was revoked by sec-team: leaked key in image",
    ),
]


@pytest.mark.parametrize(
    ("case", "breaks", "env_change", "gate", "reason"), ACCEPTANCE, ids=[a[0] for a in ACCEPTANCE]
)
def test_each_acceptance_case_blocks_on_its_gate_with_the_reason_printed(
    advisories: tuple[Advisory, ...],
    capsys: pytest.CaptureFixture[str],
    case: str,
    breaks: Any,
    env_change: dict[str, Any] | None,
    gate: GateName,
    reason: str,
) -> None:
    env = _env(**env_change) if env_change else PROD
    report = evaluate(env, SPEC.policies, breaks(good_inputs(advisories)))
    print(render_text(report))
    out = capsys.readouterr().out
    assert not report.passed
    assert [r.gate for r in report.blocking] == [gate]
    assert reason in out
    assert f"result: BLOCKED by {gate.value}" in out
    (event,) = [e for e in events(report) if e["outcome"] != "passed"]
    assert any(reason in r for r in event["reasons"])


def test_missing_evidence_blocks_every_gate_that_needs_it() -> None:
    report = evaluate(PROD, SPEC.policies, GateInputs(service="hello", today=TODAY))
    outcomes = {r.gate: type(r.verdict) for r in report.results}
    assert outcomes[GateName.RULES] is Passed  # needs only the spec
    assert all(v is Inconclusive for g, v in outcomes.items() if g is not GateName.RULES)
    assert not report.passed


def test_an_empty_report_never_passes() -> None:
    assert not GateReport("prod", ()).passed


def test_the_policy_digest_changes_with_the_policy() -> None:
    first = policy_digest(PROD, SPEC.policies)
    stricter = SPEC.policies.model_copy(
        update={"vulnerabilities": models.VulnerabilityPolicy(threshold=models.Severity.LOW)}
    )
    assert first.startswith("sha256:") and policy_digest(PROD, stricter) != first


def test_ledger_details_and_predicate_are_plain_json(advisories: tuple[Advisory, ...]) -> None:
    report = evaluate(PROD, SPEC.policies, _bad_test(good_inputs(advisories)))
    tests_result = next(r for r in report.results if r.gate is GateName.TESTS)
    details = event_details(tests_result, report)
    assert EVENT_KIND is EventKind.GATE_VERDICT
    assert details == {
        "gate": "tests",
        "outcome": "failed",
        "reasons": ["unit (unit) failed (11 passed, 1 failed, 0 errors): test_home"],
        "environment": "prod",
        "policy_digest": report.policy_digest,
    }
    body = predicate(report, evaluated_at="2026-11-27T12:00:00Z")
    assert POLICY_VERDICT_V1 == "https://kiln.dev/attestations/policy-verdict/v1"
    assert body["passed"] is False and len(body["verdicts"]) == len(GateName)
    assert json.loads(json.dumps(body)) == body
    whole = report_dict(report)
    assert json.loads(json.dumps(whole)) == whole and whole["artifact"] == ART


def test_verdict_invariants() -> None:
    with pytest.raises(ValueError, match="at least one reason"):
        Failed(())
    with pytest.raises(ValueError, match="needs a reason"):
        Inconclusive("")
