"""kiln's own predicate types: test results, policy verdicts, approvals.

Each is a frozen dataclass whose ``to_predicate`` gives the JSON put in an in-toto
Statement under its ``predicateType`` URI. The URIs are versioned; a breaking
change gets a new ``/v2`` URI, never a changed meaning. docs/attestations.md
shows an example of each. ``PREDICATE_ALIASES`` are the short names
``trust.yaml`` and the CLI accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from kiln.core.attest.provenance import SLSA_PROVENANCE_V1, rfc3339

TEST_RESULT_V1 = "https://kiln.dev/attestations/test-result/v1"
POLICY_VERDICT_V1 = "https://kiln.dev/attestations/policy-verdict/v1"
APPROVAL_V1 = "https://kiln.dev/attestations/approval/v1"
PERFORMANCE_V1 = "https://kiln.dev/attestations/performance/v1"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"

PREDICATE_ALIASES: Mapping[str, str] = {
    "provenance": SLSA_PROVENANCE_V1,
    "sbom": CYCLONEDX_BOM,
    "test-result": TEST_RESULT_V1,
    "policy-verdict": POLICY_VERDICT_V1,
    "approval": APPROVAL_V1,
    "performance": PERFORMANCE_V1,
}
ALIAS_OF: Mapping[str, str] = {uri: alias for alias, uri in PREDICATE_ALIASES.items()}


def predicate_uri(name: str) -> str:
    """The URI for a short name, or ``name`` itself when it is already a URI."""
    return PREDICATE_ALIASES.get(name, name)


def short_name(uri: str) -> str:
    return ALIAS_OF.get(uri, uri)


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class TestFailure:
    __test__ = False  # not a pytest class, despite the name

    name: str
    message: str = ""


@dataclass(frozen=True)
class TestResult:
    """One test suite run against the artifact (never against the source tree)."""

    __test__ = False  # not a pytest class, despite the name

    suite: str
    passed: int
    failed: int
    skipped: int
    started_on: datetime
    finished_on: datetime
    failures: tuple[TestFailure, ...] = ()
    runner: Mapping[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome:
        return Outcome.FAILED if self.failed or self.failures else Outcome.PASSED

    def to_predicate(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "result": self.outcome.value,
            "counts": {"passed": self.passed, "failed": self.failed, "skipped": self.skipped},
            "failures": [{"name": f.name, "message": f.message} for f in self.failures],
            "startedOn": rfc3339(self.started_on),
            "finishedOn": rfc3339(self.finished_on),
            "runner": dict(self.runner),
        }


class GateVerdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"


@dataclass(frozen=True)
class PolicyVerdict:
    """A gate's decision over the artifact and its attestations, with every reason."""

    gate: str
    environment: str
    verdict: GateVerdict
    reasons: tuple[str, ...]
    policy_digest: str
    evaluated_on: datetime

    def to_predicate(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "environment": self.environment,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "policy": {"digest": self.policy_digest},
            "evaluatedOn": rfc3339(self.evaluated_on),
        }


@dataclass(frozen=True)
class Approval:
    """A person's signed consent to promote the artifact into an environment."""

    environment: str
    approver: str
    approved_on: datetime
    comment: str = ""

    def to_predicate(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "approver": self.approver,
            "decision": "approved",
            "comment": self.comment,
            "approvedOn": rfc3339(self.approved_on),
        }


def summarize(predicate_type: str, predicate: Mapping[str, Any]) -> str:
    """One line for ``kiln attest show``; unknown predicate types show their type only."""
    if predicate_type == SLSA_PROVENANCE_V1:
        ext = predicate.get("buildDefinition", {}).get("externalParameters", {})
        src = ext.get("source", {}) if isinstance(ext, dict) else {}
        run = predicate.get("runDetails", {})
        builder = run.get("builder", {}).get("id", "?") if isinstance(run, dict) else "?"
        dirty = " (dirty tree)" if isinstance(src, dict) and src.get("dirty") else ""
        return f"built from {src.get('uri', '?')}@{src.get('revision', '?')}{dirty} by {builder}"
    if predicate_type == CYCLONEDX_BOM:
        components = predicate.get("components", [])
        count = len(components) if isinstance(components, list) else 0
        return f"CycloneDX {predicate.get('specVersion', '?')} SBOM, {count} components"
    if predicate_type == TEST_RESULT_V1:
        counts = predicate.get("counts", {})
        return (
            f"suite {predicate.get('suite', '?')} {predicate.get('result', '?')}: "
            f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed"
        )
    if predicate_type == POLICY_VERDICT_V1:
        return (
            f"gate {predicate.get('gate', '?')} for {predicate.get('environment', '?')}: "
            f"{predicate.get('verdict', '?')}"
        )
    if predicate_type == APPROVAL_V1:
        return (
            f"approved for {predicate.get('environment', '?')} by {predicate.get('approver', '?')}"
        )
    if predicate_type == PERFORMANCE_V1:
        baseline = predicate.get("baseline") or "no baseline"
        return f"performance in {predicate.get('environment', '?')} against {baseline}"
    return predicate_type
