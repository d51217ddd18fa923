"""Independent verification: kiln's DSSE envelopes and securesystemslib's verify each other.

securesystemslib (secure-systems-lab, the DSSE authors' Python library) is a
second implementation of the DSSE protocol: agreement with it shows kiln's PAE,
base64 and envelope JSON are the standard ones, not merely self-consistent.
kiln's keys are real files made by ``kiln.adapters.keys.file.generate``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

from kiln.adapters.keys.file import FileSigner, generate
from kiln.core.attest.dsse import INTOTO_PAYLOAD_TYPE, pae
from kiln.core.attest.policy import KeyKind, Requirement, TrustedKey, TrustPolicy
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.statement import statement
from kiln.core.attest.verify import EnvelopeInput, Rejected, Verified, verify
from kiln.core.digest import digest_bytes
from kiln.core.keys import key_id
from kiln.services.attest import sign_statement

SUBJECT = digest_bytes(b"an artifact signed across implementations")
STATEMENT = statement([("hello", SUBJECT)], SLSA_PROVENANCE_V1, {"buildDefinition": {}})


@pytest.fixture
def kiln_signer(tmp_path: Path) -> FileSigner:
    generate(tmp_path / "ci.key")
    return FileSigner.from_file(tmp_path / "ci.key")


def sslib_key_for(signer: FileSigner) -> SSlibKey:
    public = Ed25519PublicKey.from_public_bytes(signer.public_key)
    return SSlibKey.from_crypto(public, keyid=signer.key_id)


def test_kilns_envelope_verifies_with_securesystemslib(kiln_signer: FileSigner) -> None:
    raw = sign_statement(STATEMENT, [kiln_signer]).to_bytes()
    theirs = SslibEnvelope.from_dict(json.loads(raw))
    accepted = theirs.verify([sslib_key_for(kiln_signer)], threshold=1)
    assert list(accepted) == [kiln_signer.key_id]
    assert theirs.payload == STATEMENT.to_bytes()
    assert theirs.payload_type == INTOTO_PAYLOAD_TYPE


def test_securesystemslib_rejects_kilns_envelope_once_tampered(kiln_signer: FileSigner) -> None:
    doc = json.loads(sign_statement(STATEMENT, [kiln_signer]).to_bytes())
    doc["payloadType"] = "application/json"
    theirs = SslibEnvelope.from_dict(doc)
    with pytest.raises(VerificationError):
        theirs.verify([sslib_key_for(kiln_signer)], threshold=1)


def signed_by_securesystemslib() -> tuple[bytes, CryptoSigner]:
    signer = CryptoSigner.generate_ed25519()
    theirs = SslibEnvelope(STATEMENT.to_bytes(), INTOTO_PAYLOAD_TYPE, {})
    theirs.sign(signer)
    return json.dumps(theirs.to_dict()).encode(), signer


def raw_public(signer: CryptoSigner) -> bytes:
    return bytes.fromhex(signer.public_key.keyval["public"])


def test_kiln_verifies_an_envelope_securesystemslib_signed() -> None:
    raw, signer = signed_by_securesystemslib()
    public = raw_public(signer)
    policy = TrustPolicy(
        (TrustedKey("sslib", key_id(public), public, frozenset({KeyKind.BUILDER})),),
        (Requirement(SLSA_PROVENANCE_V1, KeyKind.BUILDER),),
    )
    # securesystemslib's keyid is its own (a hash of its key JSON), not kiln's: the
    # keyid is only a hint, so kiln still finds the trusted key that verifies.
    assert signer.public_key.keyid != key_id(public)
    verdict = verify([EnvelopeInput(raw, "sslib")], policy, SUBJECT)
    assert isinstance(verdict, Verified)
    assert verdict.accepted[0].signers == ("sslib",)


def test_kiln_refuses_a_securesystemslib_envelope_by_an_untrusted_key() -> None:
    raw, _ = signed_by_securesystemslib()
    _, other = signed_by_securesystemslib()
    public = raw_public(other)
    policy = TrustPolicy(
        (TrustedKey("other", key_id(public), public, frozenset({KeyKind.BUILDER})),),
        (Requirement(SLSA_PROVENANCE_V1, KeyKind.BUILDER),),
    )
    verdict = verify([EnvelopeInput(raw, "sslib")], policy, SUBJECT)
    assert isinstance(verdict, Rejected)
    assert [r.code for r in verdict.reasons] == ["untrusted-key", "missing"]


@settings(max_examples=200)
@given(st.text(max_size=40), st.binary(max_size=200))
def test_kilns_pae_is_byte_for_byte_securesystemslibs(payload_type: str, body: bytes) -> None:
    assert pae(payload_type, body) == SslibEnvelope(body, payload_type, {}).pae()


def test_the_public_key_file_kiln_writes_is_read_by_securesystemslib(tmp_path: Path) -> None:
    signer = generate(tmp_path / "ops.key")
    loaded = serialization.load_pem_public_key((tmp_path / "ops.pub").read_bytes())
    theirs = SSlibKey.from_crypto(loaded)
    assert theirs.keyval["public"] == signer.public_key.hex()
    assert theirs.scheme == "ed25519"
