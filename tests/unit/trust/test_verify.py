"""Verification: every bad input is refused with its reason, and every reason is listed."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from kiln.core.attest.dsse import INTOTO_PAYLOAD_TYPE, Envelope, Signature
from kiln.core.attest.policy import KeyKind, Requirement, TrustPolicy
from kiln.core.attest.predicates import APPROVAL_V1, TEST_RESULT_V1
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.statement import statement
from kiln.core.attest.verify import EnvelopeInput, Rejected, Verified, verify
from kiln.core.digest import Digest, digest_bytes
from kiln.services.attest import sign_statement
from tests.unit.trust.fakes import (
    APPROVER_A,
    APPROVER_B,
    ARTIFACT,
    BUILDER,
    OTHER,
    STRANGER,
    TESTER,
    MemorySigner,
    policy,
)

NEEDS_PROVENANCE = Requirement(SLSA_PROVENANCE_V1, KeyKind.BUILDER)
NEEDS_TESTS = Requirement(TEST_RESULT_V1, KeyKind.TESTER)
NEEDS_TWO_APPROVALS = Requirement(APPROVAL_V1, KeyKind.APPROVER, threshold=2)


def signed(
    predicate_type: str = SLSA_PROVENANCE_V1,
    *signers: MemorySigner,
    subject: Digest = ARTIFACT,
    predicate: dict[str, object] | None = None,
) -> Envelope:
    stmt = statement([("hello", subject)], predicate_type, predicate or {"x": 1})
    return sign_statement(stmt, list(signers) or [BUILDER])


def inputs(*envelopes: Envelope | bytes) -> list[EnvelopeInput]:
    out = []
    for index, env in enumerate(envelopes):
        raw = env if isinstance(env, bytes) else env.to_bytes()
        out.append(EnvelopeInput(raw, f"attestation {index}"))
    return out


def reasons(verdict: Verified | Rejected) -> list[tuple[str, str]]:
    assert isinstance(verdict, Rejected), f"expected a refusal, got {verdict}"
    return [(r.code, r.render()) for r in verdict.reasons]


def test_a_correctly_signed_provenance_verifies() -> None:
    verdict = verify(inputs(signed()), policy(NEEDS_PROVENANCE), ARTIFACT)
    assert isinstance(verdict, Verified)
    assert verdict.satisfied == ("provenance signed by 1 builder",)
    assert verdict.accepted[0].signers == ("ci",)


def test_a_payload_with_one_byte_changed_is_refused() -> None:
    env = signed()
    payload = bytearray(env.payload)
    payload[payload.index(b'"x":1') + 4] = ord("2")
    tampered = Envelope(env.payload_type, bytes(payload), env.signatures)
    assert reasons(verify(inputs(tampered), policy(NEEDS_PROVENANCE), ARTIFACT)) == [
        (
            "bad-signature",
            f"attestation 0: the signature by key ci ({BUILDER.key_id[:12]}) does not verify:"
            " the payload or the signature was changed",
        ),
        ("missing", "requires provenance signed by 1 builder: found 0 of 1"),
    ]


def test_a_signature_with_one_bit_flipped_is_refused() -> None:
    env = signed()
    sig = bytearray(env.signatures[0].sig)
    sig[10] ^= 1
    tampered = Envelope(env.payload_type, env.payload, (Signature(BUILDER.key_id, bytes(sig)),))
    codes = [
        code for code, _ in reasons(verify(inputs(tampered), policy(NEEDS_PROVENANCE), ARTIFACT))
    ]
    assert codes == ["bad-signature", "missing"]


def test_a_changed_payload_type_is_refused_because_pae_binds_it() -> None:
    env = signed()
    swapped = Envelope("application/json", env.payload, env.signatures)
    assert reasons(verify(inputs(swapped), policy(NEEDS_PROVENANCE), ARTIFACT))[0] == (
        "payload-type",
        "attestation 0: payloadType is 'application/json', not application/vnd.in-toto+json",
    )


def test_a_swapped_subject_is_refused() -> None:
    about_other = signed(subject=OTHER)
    assert reasons(verify(inputs(about_other), policy(NEEDS_PROVENANCE), ARTIFACT)) == [
        (
            "wrong-subject",
            f"attestation 0: the provenance statement is about {OTHER}, not {ARTIFACT[7:19]}",
        ),
        ("missing", "requires provenance signed by 1 builder: found 0 of 1"),
    ]


def test_a_signature_by_an_untrusted_key_is_refused() -> None:
    env = signed(SLSA_PROVENANCE_V1, STRANGER)
    assert reasons(verify(inputs(env), policy(NEEDS_PROVENANCE), ARTIFACT)) == [
        (
            "untrusted-key",
            "attestation 0: signed only by keys the trust policy does not name: keyid "
            + STRANGER.key_id[:12],
        ),
        ("missing", "requires provenance signed by 1 builder: found 0 of 1"),
    ]


def test_an_untrusted_key_claiming_a_trusted_keyid_is_refused() -> None:
    env = signed(SLSA_PROVENANCE_V1, STRANGER)
    forged = Envelope(
        env.payload_type, env.payload, (Signature(BUILDER.key_id, env.signatures[0].sig),)
    )
    codes = [
        code for code, _ in reasons(verify(inputs(forged), policy(NEEDS_PROVENANCE), ARTIFACT))
    ]
    assert codes == ["bad-signature", "missing"]


def test_keyid_is_only_a_hint_a_valid_signature_without_it_counts() -> None:
    env = signed()
    anonymous = Envelope(env.payload_type, env.payload, (Signature("", env.signatures[0].sig),))
    assert isinstance(verify(inputs(anonymous), policy(NEEDS_PROVENANCE), ARTIFACT), Verified)


@pytest.mark.parametrize("cut", [1, 10, 100, 0.5])
def test_a_truncated_envelope_is_refused(cut: float) -> None:
    raw = signed().to_bytes()
    keep = int(len(raw) * cut) if isinstance(cut, float) else len(raw) - cut
    (first, second) = reasons(verify(inputs(raw[:keep]), policy(NEEDS_PROVENANCE), ARTIFACT))
    assert first[0] == "malformed"
    assert "truncated or corrupted" in first[1]
    assert second[0] == "missing"


def test_an_envelope_with_a_duplicated_key_is_refused() -> None:
    env = signed()
    doc = env.to_json()
    text = json.dumps(doc)
    duplicated = text[:-1] + ', "payload": "' + base64.b64encode(b"{}").decode() + '"}'
    assert json.loads(duplicated)["payload"] != doc["payload"]  # a lax reader sees the 2nd
    (first, _) = reasons(verify(inputs(duplicated.encode()), policy(NEEDS_PROVENANCE), ARTIFACT))
    assert first == (
        "malformed",
        "attestation 0: the envelope is invalid: the key 'payload' appears twice",
    )


def test_a_duplicated_signature_does_not_count_twice_toward_a_threshold() -> None:
    env = signed(APPROVAL_V1, APPROVER_A)
    doubled = Envelope(env.payload_type, env.payload, env.signatures * 2)
    assert reasons(verify(inputs(doubled), policy(NEEDS_TWO_APPROVALS), ARTIFACT)) == [
        ("missing", "requires approval signed by 2 approver: found 1 of 2 (counted: alice)")
    ]


def test_the_same_envelope_twice_does_not_count_twice() -> None:
    env = signed(APPROVAL_V1, APPROVER_A)
    codes = [
        code for code, _ in reasons(verify(inputs(env, env), policy(NEEDS_TWO_APPROVALS), ARTIFACT))
    ]
    assert codes == ["missing"]


def test_two_distinct_approvers_reach_a_threshold_of_two() -> None:
    one = signed(APPROVAL_V1, APPROVER_A)
    two = signed(APPROVAL_V1, APPROVER_B)
    assert isinstance(verify(inputs(one, two), policy(NEEDS_TWO_APPROVALS), ARTIFACT), Verified)
    both = signed(APPROVAL_V1, APPROVER_A, APPROVER_B)
    assert isinstance(verify(inputs(both), policy(NEEDS_TWO_APPROVALS), ARTIFACT), Verified)


def test_a_key_signing_outside_its_kinds_does_not_count() -> None:
    env = signed(TEST_RESULT_V1, BUILDER)
    assert reasons(verify(inputs(env), policy(NEEDS_TESTS), ARTIFACT)) == [
        (
            "missing",
            "requires test-result signed by 1 tester: found 0 of 1;"
            " signed by ci, which may not sign as tester",
        )
    ]


def test_an_empty_policy_never_passes() -> None:
    empty = TrustPolicy((), (), source="trust.yaml")
    assert reasons(verify(inputs(signed()), empty, ARTIFACT)) == [
        ("empty-policy", "trust.yaml trusts no key; an empty policy never passes"),
        ("empty-policy", "trust.yaml requires no attestation; an empty policy never passes"),
        (
            "untrusted-key",
            "attestation 0: signed only by keys the trust policy does not name: keyid "
            + BUILDER.key_id[:12],
        ),
    ]


def test_a_policy_with_keys_but_no_requirement_never_passes() -> None:
    codes = [code for code, _ in reasons(verify(inputs(signed()), policy(), ARTIFACT))]
    assert codes == ["empty-policy"]


def test_a_policy_with_a_missing_key_never_passes_even_when_all_else_holds() -> None:
    broken = replace(
        policy(NEEDS_PROVENANCE),
        problems=("trust.yaml:9:16: key ops: public key file ops.pub does not exist",),
    )
    assert reasons(verify(inputs(signed()), broken, ARTIFACT)) == [
        ("policy", "trust.yaml:9:16: key ops: public key file ops.pub does not exist")
    ]


def test_no_attestations_at_all_is_refused() -> None:
    assert reasons(verify([], policy(NEEDS_PROVENANCE), ARTIFACT)) == [
        ("no-attestations", f"no attestations found for {ARTIFACT}"),
        ("missing", "requires provenance signed by 1 builder: found 0 of 1"),
    ]


def test_stored_bytes_that_do_not_match_their_digest_are_refused() -> None:
    raw = signed().to_bytes()
    item = EnvelopeInput(raw[:-1] + b" ", "attestation 0", digest=digest_bytes(raw))
    (first, _) = reasons(verify([item], policy(NEEDS_PROVENANCE), ARTIFACT))
    assert first[0] == "corrupt"


def test_an_unsigned_envelope_is_refused() -> None:
    env = Envelope(INTOTO_PAYLOAD_TYPE, signed().payload)
    (first, _) = reasons(verify(inputs(env), policy(NEEDS_PROVENANCE), ARTIFACT))
    assert first == ("unsigned", "attestation 0: the envelope carries no signature")


def test_every_failing_reason_is_listed_not_just_the_first() -> None:
    tampered = signed()
    tampered = Envelope(tampered.payload_type, tampered.payload + b" ", tampered.signatures)
    verdict = verify(
        inputs(tampered, signed(subject=OTHER), signed(TEST_RESULT_V1, STRANGER), b"{"),
        policy(NEEDS_PROVENANCE, NEEDS_TESTS, NEEDS_TWO_APPROVALS),
        ARTIFACT,
    )
    assert [code for code, _ in reasons(verdict)] == [
        "bad-signature",
        "wrong-subject",
        "untrusted-key",
        "malformed",
        "missing",
        "missing",
        "missing",
    ]


def test_one_bad_envelope_refuses_the_artifact_even_beside_good_ones() -> None:
    good = signed()
    foreign = signed(SLSA_PROVENANCE_V1, STRANGER)
    verdict = verify(inputs(good, foreign), policy(NEEDS_PROVENANCE), ARTIFACT)
    assert [code for code, _ in reasons(verdict)] == ["untrusted-key"]
    assert isinstance(verdict, Rejected)
    assert [a.signers for a in verdict.accepted] == [("ci",)]


def test_approvals_for_another_environment_do_not_count() -> None:
    rule = Requirement(APPROVAL_V1, KeyKind.APPROVER, 1, frozenset(), "prod")
    staging = signed(APPROVAL_V1, APPROVER_A, predicate={"environment": "staging"})
    prod = signed(APPROVAL_V1, APPROVER_A, predicate={"environment": "prod"})
    assert [c for c, _ in reasons(verify(inputs(staging), policy(rule), ARTIFACT))] == ["missing"]
    assert isinstance(verify(inputs(prod), policy(rule), ARTIFACT), Verified)


def test_a_requirement_limited_to_named_keys_ignores_others_of_the_kind() -> None:
    rule = Requirement(APPROVAL_V1, KeyKind.APPROVER, 1, frozenset({"bob"}))
    by_alice = signed(APPROVAL_V1, APPROVER_A)
    assert reasons(verify(inputs(by_alice), policy(rule), ARTIFACT)) == [
        (
            "missing",
            "requires approval signed by 1 approver among bob: found 0 of 1;"
            " signed by alice, which may not sign as approver",
        )
    ]


def test_a_tester_key_signs_test_results() -> None:
    env = signed(TEST_RESULT_V1, TESTER)
    assert isinstance(verify(inputs(env), policy(NEEDS_TESTS), ARTIFACT), Verified)


def test_an_envelope_rewritten_in_urlsafe_unpadded_base64_still_verifies() -> None:
    env = signed()

    def urlsafe(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    doc = {
        "payloadType": env.payload_type,
        "payload": urlsafe(env.payload),
        "signatures": [{"keyid": s.keyid, "sig": urlsafe(s.sig)} for s in env.signatures],
    }
    raw = json.dumps(doc, indent=1).encode()
    assert b"=" not in raw  # really unpadded
    assert isinstance(verify(inputs(raw), policy(NEEDS_PROVENANCE), ARTIFACT), Verified)


def test_a_valid_signature_labelled_with_another_trusted_keyid_still_counts() -> None:
    env = signed()
    mislabelled = Envelope(
        env.payload_type, env.payload, (Signature(TESTER.key_id, env.signatures[0].sig),)
    )
    verdict = verify(inputs(mislabelled), policy(NEEDS_PROVENANCE), ARTIFACT)
    assert isinstance(verdict, Verified)
    assert verdict.accepted[0].signers == ("ci",)
