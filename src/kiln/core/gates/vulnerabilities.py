"""Gate ``vulnerabilities``: the SBOM's PyPI components against an OSV database.

A finding at or above the policy's threshold fails the gate unless an
unexpired ignore names the advisory (by id or alias). Ignores apply up to and
including their ``expires`` date; after it they stop applying and the reason
says the ignore expired. Severity comes from CVSS v3 vectors and severity
labels (``osv.py``); an advisory with no usable severity is "unknown", which
blocks at every threshold.

Fail closed: no SBOM, no database, an empty database, a component that is not
a PyPI package or whose version cannot be compared: none of these pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from kiln.core.gates.inputs import Component, GateInputs
from kiln.core.gates.osv import PYPI, RANK, Advisory, Affected, Undecidable, is_affected
from kiln.core.gates.verdict import Inconclusive, Verdict, combine
from kiln.core.spec.models import GateName, VulnerabilityPolicy, VulnIgnore


@dataclass(frozen=True)
class Finding:
    component: Component
    advisory: Advisory
    affected: Affected

    @property
    def severity(self) -> str:
        return self.affected.severity

    def fixed_in(self) -> list[str]:
        return sorted(
            {e.version for r in self.affected.ranges for e in r.events if e.kind == "fixed"}
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component.ref,
            "id": self.advisory.id,
            "aliases": list(self.advisory.aliases),
            "severity": self.severity,
            "severity_basis": self.affected.severity_basis,
            "fixed_in": self.fixed_in(),
        }


def find(
    components: Sequence[Component], advisories: Sequence[Advisory]
) -> tuple[list[Finding], list[str]]:
    """Match components with advisories; return findings and what could not be decided."""
    index: dict[str, list[tuple[Advisory, Affected]]] = {}
    for advisory in advisories:
        if advisory.withdrawn:
            continue
        for affected in advisory.affected:
            if affected.ecosystem == PYPI:
                index.setdefault(affected.name, []).append((advisory, affected))
    findings: list[Finding] = []
    undecided: list[str] = []
    for component in components:
        if component.ecosystem != "pypi":
            kind = f"a {component.ecosystem} package" if component.ecosystem else "without a purl"
            undecided.append(
                f"{component.ref} cannot be checked ({kind}; only pkg:pypi is matched)"
            )
            continue
        if not component.version:
            undecided.append(f"{component.name} has no version in the SBOM; it cannot be matched")
            continue
        seen: set[str] = set()
        for advisory, affected in index.get(component.name, []):
            try:
                hit = is_affected(affected, component.version)
            except Undecidable as exc:
                undecided.append(f"{component.ref} vs {advisory.id}: {exc}")
                continue
            if hit and advisory.id not in seen:
                seen.add(advisory.id)
                findings.append(Finding(component, advisory, affected))
    return findings, undecided


@dataclass(frozen=True)
class VulnerabilitiesGate:
    policy: VulnerabilityPolicy

    @property
    def name(self) -> GateName:
        return GateName.VULNERABILITIES

    def evaluate(self, inputs: GateInputs) -> Verdict:
        if inputs.sbom is None:
            return Inconclusive("no SBOM was provided; dependencies cannot be checked")
        if inputs.advisories is None:
            return Inconclusive(
                "no OSV database was provided; set policies.vulnerabilities.database or pass --osv"
            )
        if not inputs.advisories:
            return Inconclusive("the OSV database holds no advisories; is it the right path?")
        if self.policy.ignore and inputs.today is None:
            return Inconclusive("no current date was given to judge when ignores expire")
        findings, undecided = find(inputs.sbom.components, inputs.advisories)
        threshold = self.policy.threshold.value
        reasons: list[str] = []
        notes: list[str] = []
        ignored: list[dict[str, Any]] = []
        for finding in findings:
            line = _describe(finding)
            ignore = _ignore_for(finding.advisory, self.policy.ignore)
            if ignore is not None and inputs.today is not None:
                try:
                    expires = date.fromisoformat(ignore.expires)
                except ValueError:
                    expires = date.min  # an impossible date never grants an exception
                if inputs.today <= expires:
                    notes.append(
                        f"ignored until {ignore.expires}: {line} (reason: {ignore.reason})"
                    )
                    ignored.append(
                        {**finding.as_dict(), "reason": ignore.reason, "expires": ignore.expires}
                    )
                    continue
                line += f"; the ignore of {ignore.id} expired on {ignore.expires}"
            if RANK[finding.severity] >= RANK[threshold]:
                reasons.append(line)
            else:
                notes.append(f"below the {threshold} threshold: {line}")
        details = {
            "components": len(inputs.sbom.components),
            "advisories": len(inputs.advisories),
            "database": inputs.database_label,
            "threshold": threshold,
            "findings": [f.as_dict() for f in findings],
            "ignored": ignored,
        }
        if not inputs.sbom.components:
            notes.append("the SBOM lists no components")
        used = {
            i.id.upper() for f in findings if (i := _ignore_for(f.advisory, self.policy.ignore))
        }
        for stale in (i for i in self.policy.ignore if i.id.upper() not in used):
            notes.append(f"the ignore of {stale.id} matched no finding; remove it?")
        return combine(reasons, undecided, details, notes)


def _describe(finding: Finding) -> str:
    adv = finding.advisory
    aliases = f" ({', '.join(adv.aliases)})" if adv.aliases else ""
    fixed = finding.fixed_in()
    fix = f"; fixed in {', '.join(fixed)}" if fixed else "; no fixed version"
    summary = f": {adv.summary}" if adv.summary else ""
    return (
        f"{finding.component.ref} is affected by {adv.id}{aliases}, severity "
        f"{finding.severity} ({finding.affected.severity_basis}){fix}{summary}"
    )


def _ignore_for(advisory: Advisory, ignores: Sequence[VulnIgnore]) -> VulnIgnore | None:
    names = {n.upper() for n in advisory.names}
    for ignore in ignores:
        if ignore.id.upper() in names:
            return ignore
    return None
