"""Attestation verification: kiln against securesystemslib's DSSE, side by side.

Both sides do the same work per artifact with N stored envelopes: parse each
JSON envelope, verify its Ed25519 signature over the PAE with the trusted key,
parse the in-toto statement and check it names the artifact's digest. kiln also
evaluates the policy's requirements and checks duplicate JSON keys, which the
baseline does not. Signing is compared the same way. Medians of repeated runs;
the ratio is kiln / baseline (below 1 means kiln is faster).

    .venv/bin/python -m benchmarks.bench_attest [--quick]
"""

from __future__ import annotations

import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

from benchmarks.common import median_time, report
from kiln.core.attest.dsse import INTOTO_PAYLOAD_TYPE
from kiln.core.attest.policy import KeyKind, Requirement, TrustedKey, TrustPolicy
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.statement import statement
from kiln.core.attest.verify import EnvelopeInput, Verified, verify
from kiln.core.digest import digest_bytes, hex_of
from kiln.core.keys import key_id


class _Signer:
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def main(argv: list[str]) -> int:
    from kiln.services.attest import sign_statement

    quick = "--quick" in argv
    sizes = [1, 10] if quick else [1, 10, 100, 500]
    repeat = 3 if quick else 15
    private = Ed25519PrivateKey.generate()
    signer = _Signer(private)
    subject = digest_bytes(b"benchmark artifact")
    policy = TrustPolicy(
        (TrustedKey("ci", signer.key_id, signer.public_key, frozenset({KeyKind.BUILDER})),),
        (Requirement(SLSA_PROVENANCE_V1, KeyKind.BUILDER),),
    )
    sslib_signer = CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), signer.key_id))
    sslib_key = SSlibKey.from_crypto(
        Ed25519PublicKey.from_public_bytes(signer.public_key), signer.key_id
    )
    rows = []
    for n in sizes:
        statements = [
            statement([("hello", subject)], SLSA_PROVENANCE_V1, {"n": i, "pad": "x" * 512})
            for i in range(n)
        ]
        raws = [sign_statement(s, [signer]).to_bytes() for s in statements]
        inputs = [EnvelopeInput(raw, f"e{i}") for i, raw in enumerate(raws)]

        def kiln_verify(inputs: list[EnvelopeInput] = inputs) -> None:
            assert isinstance(verify(inputs, policy, subject), Verified)

        def sslib_verify(raws: list[bytes] = raws) -> None:
            want = hex_of(subject)
            for raw in raws:
                envelope = SslibEnvelope.from_dict(json.loads(raw))
                envelope.verify([sslib_key], 1)
                body = json.loads(envelope.payload)
                assert any(s["digest"].get("sha256") == want for s in body["subject"])

        def kiln_sign(statements: list = statements) -> None:  # type: ignore[type-arg]
            for s in statements:
                sign_statement(s, [signer]).to_bytes()

        def sslib_sign(statements: list = statements) -> None:  # type: ignore[type-arg]
            for s in statements:
                envelope = SslibEnvelope(s.to_bytes(), INTOTO_PAYLOAD_TYPE, {})
                envelope.sign(sslib_signer)
                json.dumps(envelope.to_dict())

        for op, mine, theirs in (
            ("verify", kiln_verify, sslib_verify),
            ("sign", kiln_sign, sslib_sign),
        ):
            k, _ = median_time(mine, repeat=repeat)
            b, _ = median_time(theirs, repeat=repeat)
            rows.append(
                {
                    "op": op,
                    "envelopes": n,
                    "kiln_ms": k * 1000,
                    "securesystemslib_ms": b * 1000,
                    "ratio": k / b,
                }
            )
    report(
        "attest",
        rows,
        {"baseline": "securesystemslib.dsse", "repeat": repeat, "quick": quick},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
