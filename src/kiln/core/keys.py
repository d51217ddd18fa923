"""Ed25519 verification and key ids: pure functions shared by attestations and the ledger."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiln.errors import InvalidInput


def key_id(public_key: bytes) -> str:
    """Hex SHA-256 of the raw public key."""
    return hashlib.sha256(public_key).hexdigest()


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message``; never raises."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_public_key(raw: bytes, *, what: str = "public key") -> bytes:
    if len(raw) != 32:
        raise InvalidInput(f"{what} is {len(raw)} bytes; an Ed25519 public key is 32")
    return raw
