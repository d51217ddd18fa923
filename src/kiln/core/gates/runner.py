"""Run every gate an environment requires and collect a ``GateReport``.

``evaluate`` is pure: (environment, policies, evidence) -> report. Every gate
runs, even after one fails, so the report lists every reason at once. A report
passes only when it holds at least one result and every result is ``Passed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import assert_never

from kiln.core.digest import digest_bytes
from kiln.core.gates.base import Gate
from kiln.core.gates.inputs import GateInputs
from kiln.core.gates.licenses import LicensesGate
from kiln.core.gates.naming import NamingGate
from kiln.core.gates.performance import PerformanceGate
from kiln.core.gates.rules import RulesGate
from kiln.core.gates.signed import SignedGate
from kiln.core.gates.testresults import TestsGate
from kiln.core.gates.verdict import Failed, GateResult
from kiln.core.gates.vulnerabilities import VulnerabilitiesGate
from kiln.core.spec.models import Environment, GateName, Policies


@dataclass(frozen=True)
class GateReport:
    environment: str
    results: tuple[GateResult, ...]
    artifact: str = ""
    policy_digest: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def blocking(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed)


def build_gate(
    name: GateName, environment: Environment, policies: Policies, inputs: GateInputs
) -> Gate:
    if name is GateName.SIGNED:
        return SignedGate(inputs.required_attestations)
    if name is GateName.TESTS:
        return TestsGate()
    if name is GateName.VULNERABILITIES:
        return VulnerabilitiesGate(policies.vulnerabilities)
    if name is GateName.LICENSES:
        return LicensesGate(policies.licenses)
    if name is GateName.RULES:
        return RulesGate(tuple(policies.rules), environment, inputs.service)
    if name is GateName.PERFORMANCE:
        return PerformanceGate(policies.performance)
    if name is GateName.NAMING:
        return NamingGate(policies.naming)
    assert_never(name)


def policy_digest(environment: Environment, policies: Policies) -> str:
    """Digest of exactly what was enforced: the gate list and the policies."""
    body = {
        "environment": environment.name,
        "gates": [g.value for g in environment.gates],
        "policies": policies.model_dump(mode="json", by_alias=True),
    }
    return digest_bytes(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def evaluate(environment: Environment, policies: Policies, inputs: GateInputs) -> GateReport:
    """Run every gate ``environment.gates`` lists, in order, each with all its reasons."""
    results: list[GateResult] = []
    for name in environment.gates:
        gate = build_gate(name, environment, policies, inputs)
        results.append(GateResult(name, gate.evaluate(inputs)))
    if not results:
        # The spec model already refuses an empty list; this guards other callers.
        results.append(
            GateResult(
                GateName.SIGNED,
                Failed(("no gates are configured; an empty gate list never passes",)),
            )
        )
    return GateReport(
        environment=environment.name,
        results=tuple(results),
        artifact=inputs.artifact,
        policy_digest=policy_digest(environment, policies),
    )
