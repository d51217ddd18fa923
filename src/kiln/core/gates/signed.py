"""Gate ``signed``: every required attestation is present and verified, and the
artifact is not revoked.

The trust layer does the cryptography (DSSE signatures against trust.yaml
keys) and hands us one ``AttestationCheck`` per attestation it found. A
required kind with no check means the artifact is unsigned for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.core.gates.inputs import DEFAULT_REQUIRED_ATTESTATIONS, GateInputs
from kiln.core.gates.verdict import Failed, Inconclusive, Passed, Verdict
from kiln.core.spec.models import GateName


@dataclass(frozen=True)
class SignedGate:
    required: tuple[str, ...] = DEFAULT_REQUIRED_ATTESTATIONS

    @property
    def name(self) -> GateName:
        return GateName.SIGNED

    def evaluate(self, inputs: GateInputs) -> Verdict:
        trust = inputs.trust
        if trust is None:
            return Inconclusive("no signature verification results were provided for the artifact")
        reasons: list[str] = []
        if trust.revocation is not None:
            rev = trust.revocation
            who = f" by {rev.by}" if rev.by else ""
            when = f" at {rev.at}" if rev.at else ""
            reasons.append(f"artifact {trust.artifact} was revoked{who}{when}: {rev.reason}")
        if not self.required:
            reasons.append("no attestation kinds are required; an empty requirement never passes")
        signers: dict[str, list[str]] = {}
        for kind in self.required:
            checks = [c for c in trust.checks if c.kind == kind]
            good = [c for c in checks if c.verified]
            if not checks:
                reasons.append(f"unsigned: no {kind} attestation for {trust.artifact}")
            elif not good:
                problems = "; ".join(c.problem or "signature not verified" for c in checks)
                reasons.append(f"{kind} attestation is not signed by a trusted key: {problems}")
            signers[kind] = sorted({c.signer or "?" for c in good})
        for check in trust.checks:
            if not check.verified and check.kind not in self.required:
                problem = check.problem or "signature not verified"
                reasons.append(f"{check.kind} attestation failed verification: {problem}")
        details = {"artifact": trust.artifact, "required": list(self.required), "signers": signers}
        if reasons:
            return Failed(tuple(reasons), details)
        return Passed(details)
