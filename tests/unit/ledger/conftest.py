"""Helpers for ledger unit tests: a throwaway Ed25519 key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class KeyPair:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public_key = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


@pytest.fixture
def key() -> KeyPair:
    return KeyPair()
