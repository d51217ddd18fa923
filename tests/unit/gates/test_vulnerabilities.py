"""The vulnerabilities gate: threshold, ignores that expire, and failing closed."""

from __future__ import annotations

from datetime import date
from typing import Any

from kiln.core.gates.inputs import Component, GateInputs, Sbom
from kiln.core.gates.osv import Advisory
from kiln.core.gates.verdict import Failed, Inconclusive, Passed
from kiln.core.gates.vulnerabilities import VulnerabilitiesGate
from kiln.core.spec.models import Severity, VulnerabilityPolicy, VulnIgnore

from .conftest import TODAY, sbom


def _pypi(name: str, version: str) -> Component:
    return Component(name, version, f"pkg:pypi/{name}@{version}", ecosystem="pypi")


def _run(
    advisories: tuple[Advisory, ...],
    components: list[Component],
    policy: VulnerabilityPolicy | None = None,
    today: date | None = TODAY,
) -> Any:
    gate = VulnerabilitiesGate(policy or VulnerabilityPolicy())
    return gate.evaluate(
        GateInputs(sbom=Sbom(tuple(components)), advisories=advisories, today=today)
    )


def test_a_clean_sbom_passes(advisories: tuple[Advisory, ...]) -> None:
    verdict = VulnerabilitiesGate(VulnerabilityPolicy()).evaluate(
        GateInputs(sbom=sbom("clean"), advisories=advisories, today=TODAY)
    )
    assert isinstance(verdict, Passed), verdict
    assert verdict.details["findings"] == []


def test_a_critical_advisory_fails_with_id_alias_severity_and_fix(
    advisories: tuple[Advisory, ...],
) -> None:
    verdict = _run(advisories, list(sbom("vulnerable").components))
    assert isinstance(verdict, Failed)
    (reason,) = verdict.reasons
    assert reason.startswith("requests@2.90.1 is affected by KILN-2026-0001 (CVE-2999-10001)")
    assert "severity critical (CVSS 9.8)" in reason and "fixed in 2.90.3" in reason


def test_findings_below_the_threshold_pass_and_are_noted(advisories: tuple[Advisory, ...]) -> None:
    verdict = _run(advisories, [_pypi("urllib3", "9.1.0")])  # medium < default high
    assert isinstance(verdict, Passed)
    assert any("below the high threshold" in n and "KILN-2026-0002" in n for n in verdict.notes)
    low = VulnerabilityPolicy(threshold=Severity.MEDIUM)
    assert isinstance(_run(advisories, [_pypi("urllib3", "9.1.0")], low), Failed)


def test_unknown_severity_blocks_at_every_threshold(advisories: tuple[Advisory, ...]) -> None:
    policy = VulnerabilityPolicy(threshold=Severity.CRITICAL)
    verdict = _run(advisories, [_pypi("jinja2", "9.1.1")], policy)
    assert isinstance(verdict, Failed)
    assert "severity unknown" in verdict.reasons[0]


def test_an_ignore_by_alias_applies_until_its_expiry_day(advisories: tuple[Advisory, ...]) -> None:
    ignore = VulnIgnore(
        id="cve-2999-10001", reason="not reachable from our code", expires="2026-11-27"
    )
    policy = VulnerabilityPolicy(ignore=[ignore])
    verdict = _run(advisories, [_pypi("requests", "2.90.1")], policy)
    assert isinstance(verdict, Passed)
    assert "ignored until 2026-11-27" in verdict.notes[0]
    assert "not reachable from our code" in verdict.notes[0]
    assert verdict.details["ignored"][0]["id"] == "KILN-2026-0001"


def test_an_expired_ignore_stops_applying_and_says_so(advisories: tuple[Advisory, ...]) -> None:
    ignore = VulnIgnore(id="KILN-2026-0001", reason="temporary", expires="2026-11-26")
    verdict = _run(advisories, [_pypi("requests", "2.90.1")], VulnerabilityPolicy(ignore=[ignore]))
    assert isinstance(verdict, Failed)
    assert "the ignore of KILN-2026-0001 expired on 2026-11-26" in verdict.reasons[0]


def test_an_impossible_expiry_date_never_grants_an_exception(
    advisories: tuple[Advisory, ...],
) -> None:
    ignore = VulnIgnore(id="KILN-2026-0001", reason="typo", expires="2026-13-45")
    verdict = _run(advisories, [_pypi("requests", "2.90.1")], VulnerabilityPolicy(ignore=[ignore]))
    assert isinstance(verdict, Failed)


def test_withdrawn_advisories_are_skipped(advisories: tuple[Advisory, ...]) -> None:
    assert isinstance(_run(advisories, [_pypi("packaging", "26.4")]), Passed)


def test_names_are_normalised_on_both_sides(advisories: tuple[Advisory, ...]) -> None:
    comp = Component("flask", "7.0.1", "pkg:pypi/Flask@7.0.1", ecosystem="pypi")
    verdict = _run(advisories, [comp])
    assert isinstance(verdict, Failed) and "KILN-2026-0003" in verdict.reasons[0]


def test_missing_evidence_never_passes(advisories: tuple[Advisory, ...]) -> None:
    gate = VulnerabilitiesGate(VulnerabilityPolicy())
    assert isinstance(gate.evaluate(GateInputs(advisories=advisories)), Inconclusive)
    assert isinstance(gate.evaluate(GateInputs(sbom=sbom("clean"))), Inconclusive)
    empty = gate.evaluate(GateInputs(sbom=sbom("clean"), advisories=()))
    assert isinstance(empty, Inconclusive) and "no advisories" in empty.reason


def test_components_that_cannot_be_checked_block(advisories: tuple[Advisory, ...]) -> None:
    npm = Component("left-pad", "1.0.0", "pkg:npm/left-pad@1.0.0", ecosystem="npm")
    bare = Component("mystery", "1.0", None)
    verdict = _run(advisories, [npm, bare, _pypi("requests", "")])
    assert isinstance(verdict, Inconclusive)
    assert "left-pad@1.0.0 cannot be checked (a npm package" in verdict.reason
    assert "mystery@1.0 cannot be checked (without a purl" in verdict.reason
    assert "requests has no version" in verdict.reason


def test_a_violation_outranks_missing_evidence(advisories: tuple[Advisory, ...]) -> None:
    bare = Component("mystery", "1.0", None)
    verdict = _run(advisories, [bare, _pypi("requests", "2.90.2")])
    assert isinstance(verdict, Failed)
    assert len(verdict.reasons) == 2


def test_ignores_need_a_date(advisories: tuple[Advisory, ...]) -> None:
    ignore = VulnIgnore(id="KILN-2026-0001", reason="r", expires="2030-01-01")
    verdict = _run(
        advisories, [_pypi("requests", "2.90.1")], VulnerabilityPolicy(ignore=[ignore]), None
    )
    assert isinstance(verdict, Inconclusive)


def test_an_ignore_that_matches_nothing_is_noted(advisories: tuple[Advisory, ...]) -> None:
    ignore = VulnIgnore(id="KILN-2099-9999", reason="old", expires="2030-01-01")
    verdict = _run(advisories, [_pypi("requests", "2.90.3")], VulnerabilityPolicy(ignore=[ignore]))
    assert isinstance(verdict, Passed)
    assert verdict.notes == ("the ignore of KILN-2099-9999 matched no finding; remove it?",)
