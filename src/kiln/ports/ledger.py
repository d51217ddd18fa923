"""The ledger ports: ``Recorder`` (append), ``EventLog`` (read) and ``LedgerStore`` (both).

Callers name the kind, the actor and the subject; the ledger assigns the sequence
number and time and chains the event into its Merkle tree. ``links`` point at
other content by digest (config, attestations, previous release); ``details`` is
small structured data. Neither may contain a secret value.

``EventLog`` is what audit, history and DORA read: ranges of events, filtered
queries, the stored tree head, perfect Merkle nodes for proofs, and the signed
checkpoints kept beside the events. ``LedgerStore`` adds batched appends and
checkpoint storage; the SQLite and PostgreSQL adapters implement it.

``OnceAppender`` is the conditional append the rollout executor's outbox uses
(``kiln.services.outbox``): an event carrying an idempotency key is appended
only if no stored event has that key, so replaying the outbox after a crash
never records a transition twice. Every other caller keeps using ``Recorder``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from kiln.core.ledger.checkpoint import Checkpoint
from kiln.core.ledger.events import Event, EventDraft
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.verify import LogEntry


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


def record_draft(recorder: Recorder, draft: EventDraft) -> int:
    """Append an already built event through a plain ``Recorder``."""
    return recorder.record(
        draft.kind,
        actor=draft.actor,
        artifact=draft.artifact,
        environment=draft.environment,
        release=draft.release,
        links=draft.links,
        details=draft.details,
    )


class EventLog(Protocol):
    @property
    def origin(self) -> str:
        """The log's checkpoint origin line, unique per ledger."""
        ...

    def size(self) -> int: ...

    def head(self) -> Checkpoint:
        """The stored (unsigned) tree head: size and root as of the last append."""
        ...

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        """Events with ``start <= seq < stop`` in order."""
        ...

    def query(
        self,
        *,
        environment: str | None = None,
        artifact: str | None = None,
        release: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        kinds: Sequence[EventKind] | None = None,
    ) -> list[Event]:
        """Events matching every given filter, in seq order (``until`` is exclusive)."""
        ...

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[LogEntry]:
        """Raw stored entries (seq, leaf bytes, stored leaf hash) for verification."""
        ...

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        """The same as ``entries`` as plain tuples: the fast path ``verify_log`` reads."""
        ...

    def node(self, level: int, index: int) -> bytes:
        """A perfect Merkle subtree hash (level 0 = leaf hashes); ``NotFound`` if absent."""
        ...

    def level(self, level: int) -> Iterator[tuple[int, bytes]]:
        """Every stored perfect node ``(index, hash)`` of ``level`` (>= 1), by index."""
        ...

    def checkpoints(self) -> list[bytes]:
        """Every signed checkpoint note stored with the log, oldest first."""
        ...


class OnceAppender(Protocol):
    def append_once(self, drafts: Sequence[EventDraft]) -> list[int]:
        """Append, in order and in one durable transaction, each draft whose
        ``details.idempotency_key`` (``kiln.core.ledger.outbox``) no stored event
        carries yet; return each draft's seq (the stored event's for a key already
        there). A draft without a key is refused with ``InvalidInput``; a key twice
        in ``drafts`` is appended once. Concurrent callers with the same keys
        append each key once: the lookup runs under the append's writer lock."""
        ...


class LedgerStore(EventLog, Recorder, OnceAppender, Protocol):
    def append(self, drafts: Sequence[EventDraft]) -> list[int]:
        """Append ``drafts`` in one durable transaction; return their sequence numbers."""
        ...

    def add_checkpoint(self, size: int, note: bytes) -> None:
        """Keep a signed checkpoint beside the events (idempotent per size and note)."""
        ...

    def close(self) -> None: ...
