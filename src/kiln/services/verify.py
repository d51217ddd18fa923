"""Verification use cases: read ``trust.yaml``, judge an artifact, admit it to an environment.

``verify_artifact`` is what ``kiln verify`` prints; ``admit`` is the same check
as the admission step every deploy calls first. The judging itself is the pure
``kiln.core.attest.verify.verify``; this module only gathers its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.core.attest.policy import (
    MAX_POLICY_BYTES,
    KeyKind,
    Requirement,
    TrustPolicy,
    parse_trust_file,
    resolve_policy,
)
from kiln.core.attest.predicates import APPROVAL_V1, short_name
from kiln.core.attest.verify import EnvelopeInput, Rejected, Verdict, Verified, verify
from kiln.core.digest import Digest, short
from kiln.core.ledger.kinds import EventKind
from kiln.core.spec.models import Environment, ServiceSpec
from kiln.errors import NotFound, Refused
from kiln.ports.attestations import AttestationStore


def read_policy(path: Path) -> TrustPolicy:
    """Load ``trust.yaml`` and its key files.

    A missing policy file is not an error here but a policy that trusts nothing,
    so the verdict lists it with every other reason. A malformed file raises
    ``SpecError`` with file:line:column for each mistake.
    """
    source = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        return TrustPolicy(
            (),
            (),
            (f"no trust policy at {source}; without one nothing is trusted",),
            source=source,
        )
    except IsADirectoryError:
        return TrustPolicy((), (), (f"{source} is a directory, not trust.yaml",), source=source)
    parsed = parse_trust_file(data, source=source)
    base = path.parent

    def read(name: str) -> bytes:
        target = Path(name)
        return (target if target.is_absolute() else base / target).read_bytes()

    return resolve_policy(parsed, read=read)


def verify_artifact(subject: Digest, *, store: AttestationStore, policy: TrustPolicy) -> Verdict:
    envelopes = [
        EnvelopeInput(raw=item.raw, ref=f"attestation {short(item.digest)}", digest=item.digest)
        for item in store.for_subject(subject)
    ]
    return verify(envelopes, policy, subject)


@dataclass(frozen=True)
class Admitted:
    verdict: Verified


@dataclass(frozen=True)
class AdmittedUnsigned:
    """Let in only because the environment says ``allowUnsigned: true``.

    The deploy that follows MUST record ``record_as`` (``deploy.unsigned``) in the
    ledger with ``reasons``, so every such deploy is visible in the audit trail.
    """

    verdict: Rejected
    environment: str
    record_as: EventKind = EventKind.UNSIGNED_DEPLOY

    @property
    def reasons(self) -> list[str]:
        return [r.render() for r in self.verdict.reasons]


@dataclass(frozen=True)
class NotAdmitted:
    verdict: Rejected
    environment: str

    def to_error(self) -> Refused:
        lines = "\n".join(f"  - {r.render()}" for r in self.verdict.reasons)
        return Refused(
            f"{self.verdict.subject} is not admitted to {self.environment}:\n{lines}",
            hint="sign the missing attestations with `kiln attest`, or fix trust.yaml",
        )


Admission = Admitted | AdmittedUnsigned | NotAdmitted


def find_environment(spec: ServiceSpec, name: str) -> Environment:
    for env in spec.environments:
        if env.name == name:
            return env
    names = ", ".join(e.name for e in spec.environments)
    raise NotFound(f"no environment {name!r} in the spec", hint=f"environments: {names}")


def environment_policy(policy: TrustPolicy, environment: Environment) -> TrustPolicy:
    """The policy plus the environment's own approval rule from kiln.yaml."""
    approvals = environment.approvals
    if approvals.required <= 0:
        return policy
    names = {k.key_id: k.name for k in policy.keys}
    allowed = frozenset(names.get(a, a) for a in approvals.approvers)
    rule = Requirement(APPROVAL_V1, KeyKind.APPROVER, approvals.required, allowed, environment.name)
    return policy.with_requirements((rule,))


def admit(
    subject: Digest,
    environment: Environment,
    *,
    store: AttestationStore,
    policy: TrustPolicy,
) -> Admission:
    """The admission step before any deploy: verify, or let through only on explicit opt-out."""
    verdict = verify_artifact(subject, store=store, policy=environment_policy(policy, environment))
    if isinstance(verdict, Verified):
        return Admitted(verdict)
    if environment.allow_unsigned:
        return AdmittedUnsigned(verdict, environment.name)
    return NotAdmitted(verdict, environment.name)


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    accepted = [
        {
            "attestation": a.ref,
            "predicateType": a.predicate_type,
            "kind": short_name(a.predicate_type),
            "signers": list(a.signers),
        }
        for a in verdict.accepted
    ]
    if isinstance(verdict, Verified):
        return {
            "subject": verdict.subject,
            "verified": True,
            "satisfied": list(verdict.satisfied),
            "accepted": accepted,
            "reasons": [],
        }
    return {
        "subject": verdict.subject,
        "verified": False,
        "accepted": accepted,
        "reasons": [
            {"code": r.code, "message": r.message, "attestation": r.envelope}
            for r in verdict.reasons
        ],
    }
