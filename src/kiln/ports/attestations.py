"""The ``AttestationStore`` port: signed envelopes kept by content and found by subject.

An envelope is stored once under the sha256 of its bytes and indexed under the
digest of every subject its statement names. Readers get the bytes *and* the
digest they were stored under, so verification can tell a changed or truncated
file from a valid one instead of trusting the store. Implementations: the local
state directory (``kiln.adapters.artifacts.attestations``) today; a registry's
referrers later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kiln.core.digest import Digest


@dataclass(frozen=True)
class StoredEnvelope:
    digest: Digest
    raw: bytes


class AttestationStore(Protocol):
    def put(self, envelope: bytes, subjects: Sequence[Digest]) -> Digest:
        """Store ``envelope`` (idempotent) and index it under each subject; return its digest."""
        ...

    def for_subject(self, subject: Digest) -> list[StoredEnvelope]:
        """Every envelope indexed under ``subject``, in a stable order; empty when none."""
        ...
