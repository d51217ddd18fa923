"""Gate ``licenses``: every SBOM component's licenses against allow and deny lists.

A component's license entries must all be acceptable (several entries are read
as AND); inside an SPDX expression, OR needs one acceptable option and AND
needs all. A component with no license at all fails, unless the allow list
contains ``NOASSERTION`` (SPDX's own word for "no license information"), which
is how a spec says "unlicensed components are acceptable" without a new key.
A free-text license name (not an SPDX id) is compared as a whole with the
lists. An empty policy (no allow, no deny) fails: it would pass anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.core.gates.inputs import GateInputs
from kiln.core.gates.spdx import NOASSERTION, Leaf, LicenseRules, parse
from kiln.core.gates.verdict import Inconclusive, Verdict, combine
from kiln.core.spec.models import GateName, LicensePolicy
from kiln.errors import InvalidInput


@dataclass(frozen=True)
class LicensesGate:
    policy: LicensePolicy

    @property
    def name(self) -> GateName:
        return GateName.LICENSES

    def evaluate(self, inputs: GateInputs) -> Verdict:
        if inputs.sbom is None:
            return Inconclusive("no SBOM was provided; licenses cannot be checked")
        if not self.policy.allow and not self.policy.deny:
            return combine(
                ["policies.licenses has neither allow nor deny; an empty policy never passes"], []
            )
        rules = LicenseRules.of(self.policy.allow, self.policy.deny)
        reasons: list[str] = []
        table: dict[str, list[str]] = {}
        for component in inputs.sbom.components:
            table[component.ref] = [lic.expression for lic in component.licenses]
            if not component.licenses:
                if rules.leaf(Leaf(NOASSERTION)) is not None or NOASSERTION not in rules.allow:
                    reasons.append(
                        f"{component.ref} declares no license "
                        f"(add NOASSERTION to policies.licenses.allow to accept that)"
                    )
                continue
            for lic in component.licenses:
                if not lic.is_spdx:
                    problem = rules.leaf(Leaf(lic.expression))
                else:
                    try:
                        problem = rules.check(parse(lic.expression))
                    except InvalidInput as exc:
                        problem = f"cannot read license expression: {exc.message}"
                if problem:
                    reasons.append(f"{component.ref} ({lic.expression}): {problem}")
        details = {
            "components": len(inputs.sbom.components),
            "allow": list(self.policy.allow),
            "deny": list(self.policy.deny),
            "licenses": table,
        }
        return combine(reasons, [], details)
