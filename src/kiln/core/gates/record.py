"""Turn gate results into what the ledger and attestations record, as plain dicts.

``event_details`` is the ``details`` of one ``EventKind.GATE_VERDICT`` ledger
event; ``predicate`` is the body of a policy-verdict attestation (an in-toto
Statement v1 predicate of type ``POLICY_VERDICT_V1``). The lead wires the
signing and recording; nothing here performs I/O. Neither payload holds a
secret: reasons are built from the SBOM, advisories, test names and the spec.
"""

from __future__ import annotations

from typing import Any

from kiln.core.gates.runner import GateReport
from kiln.core.gates.verdict import GateResult
from kiln.core.ledger.kinds import EventKind

POLICY_VERDICT_V1 = "https://kiln.dev/attestations/policy-verdict/v1"
EVENT_KIND = EventKind.GATE_VERDICT


def result_dict(result: GateResult) -> dict[str, Any]:
    verdict = result.verdict
    return {
        "gate": result.gate.value,
        "outcome": verdict.outcome,
        "reasons": list(verdict.reasons),
        "details": dict(verdict.details),
    }


def report_dict(report: GateReport) -> dict[str, Any]:
    return {
        "environment": report.environment,
        "artifact": report.artifact,
        "passed": report.passed,
        "policy_digest": report.policy_digest,
        "gates": [result_dict(r) for r in report.results],
    }


def event_details(result: GateResult, report: GateReport) -> dict[str, Any]:
    """Ledger ``details`` for one gate's verdict (small: reasons, not the full details)."""
    return {
        "gate": result.gate.value,
        "outcome": result.verdict.outcome,
        "reasons": list(result.verdict.reasons),
        "environment": report.environment,
        "policy_digest": report.policy_digest,
    }


def events(report: GateReport) -> list[dict[str, Any]]:
    """One ledger event's details per gate, in evaluation order."""
    return [event_details(r, report) for r in report.results]


def predicate(report: GateReport, *, evaluated_at: str) -> dict[str, Any]:
    """Body of the policy-verdict attestation over ``report.artifact``."""
    return {
        "environment": report.environment,
        "passed": report.passed,
        "policyDigest": report.policy_digest,
        "evaluatedAt": evaluated_at,
        "verdicts": [
            {
                "gate": r.gate.value,
                "outcome": r.verdict.outcome,
                "reasons": list(r.verdict.reasons),
                "details": dict(r.verdict.details),
            }
            for r in report.results
        ],
    }


def render_text(report: GateReport) -> str:
    """The report as a plain table, every reason on its own line."""
    lines = [
        f"gates for {report.environment}" + (f" · {report.artifact}" if report.artifact else "")
    ]
    width = max((len(r.gate.value) for r in report.results), default=4)
    for r in report.results:
        lines.append(f"  {r.gate.value:<{width}}  {r.verdict.outcome.upper()}")
        for reason in r.verdict.reasons:
            lines.append(f"  {'':<{width}}    - {reason}")
    verdict = (
        "PASSED"
        if report.passed
        else f"BLOCKED by {', '.join(r.gate.value for r in report.blocking)}"
    )
    lines.append(f"result: {verdict}")
    return "\n".join(lines)
