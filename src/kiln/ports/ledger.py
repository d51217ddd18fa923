"""The ``Recorder`` port: how every other part of kiln appends to the ledger.

Callers name the kind, the actor and the subject; the ledger assigns the sequence
number and time and chains the event into its Merkle tree. ``links`` point at
other content by digest (config, attestations, previous release); ``details`` is
small structured data. Neither may contain a secret value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kiln.core.ledger.kinds import EventKind


class Recorder(Protocol):
    def record(
        self,
        kind: EventKind,
        *,
        actor: str,
        artifact: str | None = None,
        environment: str | None = None,
        release: str | None = None,
        links: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one event durably; return its sequence number."""
        ...
