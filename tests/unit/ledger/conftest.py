"""Helpers for ledger unit tests: a fixed clock and a throwaway Ed25519 key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class FrozenClock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return self.moment.timestamp()

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


class KeyPair:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public_key = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 20, 14, 0, tzinfo=UTC))


@pytest.fixture
def key() -> KeyPair:
    return KeyPair()
