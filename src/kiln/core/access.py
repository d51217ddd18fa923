"""Who is asking: API tokens and the identities they stand for.

Tokens are random 256-bit strings given to a client once; kiln stores only their
SHA-256, so a leaked state directory does not leak working credentials. Lookup
compares digests in constant time. The identity's name is the ``actor`` that the
ledger records for everything done through the API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # deploy, promote, abort, rollback, approve
    READ = "read"  # status, history, metrics


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role


@dataclass(frozen=True)
class TokenEntry:
    name: str
    sha256: str
    role: Role


def new_token() -> str:
    return "kiln_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenTable:
    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = tuple(entries)

    def authenticate(self, authorization: str | None) -> Identity | None:
        """The identity behind an ``Authorization: Bearer <token>`` header, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        presented = token_digest(token.strip())
        found: Identity | None = None
        for entry in self._entries:  # no early exit: the time does not depend on the match
            if hmac.compare_digest(presented, entry.sha256):
                found = Identity(entry.name, entry.role)
        return found

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self._entries)
