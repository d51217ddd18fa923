"""One in-memory ``Recorder`` for unit tests: it keeps every event and checks
the port's contract on each call, so a service that records badly fails here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kiln.core.digest import parse_digest
from kiln.core.ledger.kinds import EventKind


class MemoryRecorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

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
        assert isinstance(kind, EventKind), kind
        assert actor, "every event names its actor"
        if artifact is not None:
            parse_digest(artifact)
        plain = {"links": dict(links or {}), "details": dict(details or {})}
        assert json.loads(json.dumps(plain)) == plain, "links and details are JSON data"
        assert "PRIVATE KEY" not in json.dumps(plain), "key material never reaches the ledger"
        self.events.append(
            {"kind": kind, "actor": actor, "artifact": artifact, "environment": environment} | plain
        )
        return len(self.events)

    def details(self, kind: EventKind) -> list[dict[str, Any]]:
        """The details of every event of ``kind``, in order."""
        return [e["details"] for e in self.events if e["kind"] is kind]
