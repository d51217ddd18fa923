"""Verification: (envelopes, trust policy, subject digest) → ``Verified`` | ``Rejected``.

Pure and total: every input, however malformed, gives a verdict, and a
``Rejected`` verdict lists *every* reason found, not just the first, so one run of
``kiln verify`` tells the user everything to fix.

The rules, in the order they are checked (docs/security.md gives the why):

1. The policy itself must be usable: it names at least one key and one
   requirement, and every key it names loaded. An empty or broken policy never
   passes (fail closed).
2. Each envelope presented for the subject must be whole: its bytes match the
   digest it is stored under, it parses as DSSE with no duplicate keys, and its
   payload type is in-toto's.
3. Each envelope needs at least one signature that verifies over the PAE with a
   key the policy trusts. ``keyid`` is only a hint (DSSE protocol: it "MUST NOT
   be used for security decisions"), so a signature whose keyid is unknown is
   still tried against every trusted key, and so is one whose keyid names the
   wrong trusted key. A signature that verifies with no trusted key although its
   keyid names one means the payload or the signature changed: a reason.
4. Its statement must name the subject by digest (names are ignored).
5. Each requirement counts *distinct* trusted keys of the required kind that
   signed a statement of that predicate type about the subject. A key counts once
   however many signatures or envelope copies carry it, so duplicating a
   signature never reaches a threshold.

Any envelope that fails 2 to 4 is a reason on its own: the store is written only by
kiln, so a broken or foreign envelope there is evidence of tampering and the
artifact is refused rather than the envelope quietly skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kiln.core.attest.dsse import INTOTO_PAYLOAD_TYPE, parse_envelope
from kiln.core.attest.policy import Requirement, TrustedKey, TrustPolicy
from kiln.core.attest.predicates import short_name
from kiln.core.attest.statement import parse_statement
from kiln.core.digest import Digest, digest_bytes, short
from kiln.core.keys import verify_ed25519
from kiln.errors import InvalidInput


@dataclass(frozen=True)
class EnvelopeInput:
    """One envelope to judge: its bytes, a label for messages, its storage digest if any."""

    raw: bytes
    ref: str
    digest: Digest | None = None


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    envelope: str = ""

    def render(self) -> str:
        return f"{self.envelope}: {self.message}" if self.envelope else self.message


@dataclass(frozen=True)
class Accepted:
    """An envelope whose signature, payload and subject all checked out."""

    ref: str
    predicate_type: str
    signers: tuple[str, ...]
    environment: str | None = None


@dataclass(frozen=True)
class Verified:
    subject: Digest
    accepted: tuple[Accepted, ...]
    satisfied: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    subject: Digest
    reasons: tuple[Reason, ...]
    accepted: tuple[Accepted, ...] = ()


Verdict = Verified | Rejected


def verify(envelopes: Sequence[EnvelopeInput], policy: TrustPolicy, subject: Digest) -> Verdict:
    reasons: list[Reason] = [Reason("policy", problem) for problem in policy.problems]
    if not policy.keys and not policy.problems:
        reasons.append(
            Reason("empty-policy", f"{policy.source} trusts no key; an empty policy never passes")
        )
    if not policy.requirements and not policy.problems:
        reasons.append(
            Reason(
                "empty-policy",
                f"{policy.source} requires no attestation; an empty policy never passes",
            )
        )
    if not envelopes:
        reasons.append(Reason("no-attestations", f"no attestations found for {subject}"))
    accepted: list[Accepted] = []
    seen: set[Digest] = set()
    for item in envelopes:
        content = digest_bytes(item.raw)
        if content in seen:
            continue  # the same bytes twice add nothing, and must not count twice
        seen.add(content)
        result = _check_envelope(item, policy, subject)
        if isinstance(result, Accepted):
            accepted.append(result)
        else:
            reasons.extend(result)
    satisfied: list[str] = []
    for requirement in policy.requirements:
        counted, wrong_kind = _signers_for(requirement, accepted, policy)
        if len(counted) >= requirement.threshold:
            satisfied.append(requirement.describe())
            continue
        message = (
            f"requires {requirement.describe()}: found {len(counted)} of {requirement.threshold}"
        )
        if counted:
            message += f" (counted: {', '.join(sorted(counted))})"
        if wrong_kind:
            message += (
                f"; signed by {', '.join(sorted(wrong_kind))}, which may not sign as"
                f" {requirement.signed_by}"
            )
        reasons.append(Reason("missing", message))
    if reasons:
        return Rejected(subject, tuple(reasons), tuple(accepted))
    return Verified(subject, tuple(accepted), tuple(satisfied))


def _signers_for(
    requirement: Requirement, accepted: Sequence[Accepted], policy: TrustPolicy
) -> tuple[set[str], set[str]]:
    """Distinct key names that count toward ``requirement``, and those that signed but may not."""
    by_name = {k.name: k for k in policy.keys}
    counted: set[str] = set()
    wrong_kind: set[str] = set()
    for item in accepted:
        if item.predicate_type != requirement.predicate_type:
            continue
        if requirement.environment and item.environment != requirement.environment:
            continue
        for name in item.signers:
            key = by_name[name]
            if requirement.keys and name not in requirement.keys:
                wrong_kind.add(name)
            elif requirement.signed_by in key.kinds:
                counted.add(name)
            else:
                wrong_kind.add(name)
    return counted, wrong_kind


def _check_envelope(
    item: EnvelopeInput, policy: TrustPolicy, subject: Digest
) -> Accepted | list[Reason]:
    ref = item.ref
    if item.digest is not None and digest_bytes(item.raw) != item.digest:
        return [
            Reason(
                "corrupt",
                f"the stored bytes do not match their digest {item.digest}"
                " (changed or truncated on disk)",
                ref,
            )
        ]
    try:
        envelope = parse_envelope(item.raw)
    except InvalidInput as exc:
        return [Reason("malformed", exc.message, ref)]
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        return [
            Reason(
                "payload-type",
                f"payloadType is {envelope.payload_type!r}, not {INTOTO_PAYLOAD_TYPE}",
                ref,
            )
        ]
    if not envelope.signatures:
        return [Reason("unsigned", "the envelope carries no signature", ref)]
    message = envelope.pae()
    signers: set[str] = set()
    reasons: list[Reason] = []
    unknown: list[str] = []
    for sig in envelope.signatures:
        claimed = policy.key_by_id(sig.keyid)
        # The claimed key first (the usual case, one verification), then the others:
        # a wrong keyid alone must not decide anything.
        candidates: Sequence[TrustedKey] = (
            [claimed, *(k for k in policy.keys if k is not claimed)] if claimed else policy.keys
        )
        good = next((k for k in candidates if verify_ed25519(k.public_key, message, sig.sig)), None)
        if good is not None:
            signers.add(good.name)
        elif claimed is not None:
            reasons.append(
                Reason(
                    "bad-signature",
                    f"the signature by key {claimed.name} ({claimed.key_id[:12]}) does not verify:"
                    " the payload or the signature was changed",
                    ref,
                )
            )
        else:
            unknown.append(sig.keyid[:12] or "(no keyid)")
    if not signers:
        if unknown:
            reasons.append(
                Reason(
                    "untrusted-key",
                    "signed only by keys the trust policy does not name: keyid "
                    + ", ".join(unknown),
                    ref,
                )
            )
        return reasons
    try:
        statement = parse_statement(envelope.payload)
    except InvalidInput as exc:
        return [*reasons, Reason("malformed", exc.message, ref)]
    if not statement.about(subject):
        named = ", ".join(str(d) for d in statement.subject_digests()) or "no sha256 digest"
        reasons.append(
            Reason(
                "wrong-subject",
                f"the {short_name(statement.predicate_type)} statement is about {named},"
                f" not {short(subject)}",
                ref,
            )
        )
    if reasons:
        return reasons
    environment = statement.predicate.get("environment")
    return Accepted(
        ref,
        statement.predicate_type,
        tuple(sorted(signers)),
        environment if isinstance(environment, str) else None,
    )
