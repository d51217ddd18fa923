"""The ``Signer`` port: Ed25519 signatures by a key kiln may not hold in memory.

A file key today (``kiln.adapters.keys.file``); a KMS or Sigstore signer later
implements the same two members. ``key_id`` is the hex SHA-256 of the raw 32-byte
public key, the id kiln puts in DSSE ``keyid`` and ``trust.yaml``.
"""

from __future__ import annotations

from typing import Protocol


class Signer(Protocol):
    @property
    def key_id(self) -> str: ...

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        ...

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``message``."""
        ...
