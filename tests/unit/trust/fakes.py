"""Test doubles for the trust area: in-memory signer, store and recorder.

Each fake checks its own side of the port's contract so a service that misuses
a port fails here rather than against the real adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiln.core.attest.policy import KeyKind, Requirement, TrustedKey, TrustPolicy
from kiln.core.digest import Digest, digest_bytes, is_digest
from kiln.core.keys import key_id
from kiln.ports.attestations import StoredEnvelope

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 12, 4, 30, tzinfo=UTC)
ARTIFACT = digest_bytes(b"the artifact's manifest")
OTHER = digest_bytes(b"some other artifact")


class MemorySigner:
    """A ``Signer`` from a fixed seed, so keys are the same in every run."""

    def __init__(self, seed: int) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
        self._public = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_id(self) -> str:
        return key_id(self._public)

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def trusted(self, name: str, *kinds: KeyKind) -> TrustedKey:
        return TrustedKey(name, self.key_id, self._public, frozenset(kinds))


BUILDER = MemorySigner(1)
TESTER = MemorySigner(2)
APPROVER_A = MemorySigner(3)
APPROVER_B = MemorySigner(4)
STRANGER = MemorySigner(9)


def policy(*requirements: Requirement) -> TrustPolicy:
    keys = (
        BUILDER.trusted("ci", KeyKind.BUILDER),
        TESTER.trusted("qa", KeyKind.TESTER),
        APPROVER_A.trusted("alice", KeyKind.APPROVER),
        APPROVER_B.trusted("bob", KeyKind.APPROVER),
    )
    return TrustPolicy(keys, tuple(requirements), source="trust.yaml")


@dataclass
class MemoryStore:
    """An ``AttestationStore`` in a dict; refuses what the real one would never hold."""

    blobs: dict[Digest, bytes] = field(default_factory=dict)
    index: dict[Digest, list[Digest]] = field(default_factory=dict)

    def put(self, envelope: bytes, subjects: Sequence[Digest]) -> Digest:
        assert envelope, "an empty envelope is never stored"
        assert subjects, "an envelope must be indexed under at least one subject"
        assert all(is_digest(s) for s in subjects)
        digest = digest_bytes(envelope)
        self.blobs[digest] = envelope
        for subject in subjects:
            listed = self.index.setdefault(subject, [])
            if digest not in listed:
                listed.append(digest)
        return digest

    def for_subject(self, subject: Digest) -> list[StoredEnvelope]:
        assert is_digest(subject)
        return [StoredEnvelope(d, self.blobs[d]) for d in sorted(self.index.get(subject, []))]
