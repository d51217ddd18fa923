"""The ledger logic both SQL stores share; each subclass supplies its dialect.

Tables (``docs/ledger.md``, "Storage"):

- ``ledger_events(seq, body, leaf_hash)``: the canonical leaf bytes (a BLOB in
  SQLite, UTF-8 text in PostgreSQL) and their RFC 6962 leaf hash. Append-only:
  triggers refuse UPDATE and DELETE. Queries filter with expression indexes on
  the JSON body, so no second copy of a field can disagree with the hashed bytes.
- ``ledger_nodes(level, idx, hash)``: every perfect subtree hash (level >= 1),
  written by the append that completes it, so proofs read O(log n) rows.
- ``ledger_head``: one row, the tree size, root and frontier (the right edge),
  so an append costs O(log n) hashes and never rereads the log. The row is
  locked for the whole append: two writers cannot take the same seq or fork the
  tree.
- ``ledger_checkpoints(size, note)``: signed checkpoints, append-only.
- ``ledger_meta``: the log id (its origin), written once.

Schema version 2 adds an expression index on ``details.idempotency_key`` for
``append_once``, the conditional append the rollout executor's outbox uses.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from kiln.adapters.store.migrations import COMPONENT, SCHEMA_VERSION_TABLE
from kiln.core.ledger.checkpoint import Checkpoint
from kiln.core.ledger.events import Event, EventDraft, decode, encode_draft, format_time
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.merkle import EMPTY_ROOT, HASH_SIZE, Frontier, leaf_hash
from kiln.core.ledger.outbox import IDEMPOTENCY_KEY, key_of
from kiln.core.ledger.verify import LogEntry
from kiln.errors import IntegrityError, InvalidInput, NotFound
from kiln.ports.clock import Clock

ORIGIN_PREFIX = "kiln.local/ledger/"
_FETCH = 5000


class Cursor(Protocol):
    """The DB-API subset both drivers share (sqlite3 and psycopg cursors)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int) -> list[Any]: ...


class SqlLedger(ABC):
    """Implements ``LedgerStore`` over a DB-API connection; dialect hooks below."""

    #: placeholder of the driver's paramstyle; SQL here is written with ``?``
    P = "?"

    def _q(self, sql: str) -> str:
        return sql if self.P == "?" else sql.replace("?", self.P)

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._origin: str | None = None

    # -- dialect hooks -------------------------------------------------------

    @abstractmethod
    def _write(self) -> AbstractContextManager[Cursor]:
        """A transaction holding the writer lock; commits durably on exit."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Cursor]:
        """A cursor that sees one consistent snapshot."""

    @abstractmethod
    def _json(self, path: str) -> str:
        """SQL text extracting a string at ``path`` (dotted) from ``body``."""

    def _body(self, leaf: bytes) -> bytes | str:
        """How the leaf bytes are stored in the ``body`` column (text by default)."""
        return leaf.decode("utf-8")

    @staticmethod
    def _leaf(body: bytes | str | memoryview) -> bytes:
        if isinstance(body, str):
            return body.encode("utf-8")
        return bytes(body)

    def _lock_migrations(self, cur: Cursor) -> None:
        """Serialise concurrent migrators where the dialect needs it (PostgreSQL).

        SQLite needs nothing: ``_write`` already holds its one writer lock."""
        del cur

    def _apply_migrations(self, migrations: Sequence[tuple[int, Sequence[str]]]) -> None:
        """Run every migration newer than the recorded version, in one transaction."""
        with self._write() as cur:
            self._lock_migrations(cur)
            cur.execute(SCHEMA_VERSION_TABLE)
            cur.execute(
                self._q("SELECT COALESCE(MAX(version), 0) FROM schema_version WHERE component = ?"),
                (COMPONENT,),
            )
            current = int(cur.fetchone()[0])
            for version, statements in migrations:
                if version <= current:
                    continue
                for statement in statements:
                    cur.execute(statement)
                if version == 1:
                    cur.execute(
                        self._q("INSERT INTO ledger_meta (key, value) VALUES ('log_id', ?)"),
                        (self.new_log_id(),),
                    )
                    cur.execute(
                        self._q(
                            "INSERT INTO ledger_head (id, size, root, frontier) VALUES (1, 0, ?, ?)"
                        ),
                        (EMPTY_ROOT, b""),
                    )
                cur.execute(
                    self._q(
                        "INSERT INTO schema_version (component, version, applied_at)"
                        " VALUES (?, ?, ?)"
                    ),
                    (COMPONENT, version, datetime.now(UTC).isoformat()),
                )

    # -- LedgerStore ------------------------------------------------------------

    @property
    def origin(self) -> str:
        if self._origin is None:
            with self._read() as cur:
                cur.execute(self._q("SELECT value FROM ledger_meta WHERE key = ?"), ("log_id",))
                row = cur.fetchone()
            self._origin = ORIGIN_PREFIX + str(row[0])
        return self._origin

    @staticmethod
    def new_log_id() -> str:
        return secrets.token_hex(8)

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
        draft = EventDraft(
            kind=kind,
            actor=actor,
            artifact=artifact,
            environment=environment,
            release=release,
            links=MappingProxyType(dict(links or {})),
            details=MappingProxyType(dict(details or {})),
        )
        return self.append([draft])[0]

    def append(self, drafts: Sequence[EventDraft]) -> list[int]:
        if not drafts:
            return []
        with self._write() as cur:
            return self._append(cur, drafts)

    def append_once(self, drafts: Sequence[EventDraft]) -> list[int]:
        keys: list[str] = []
        for draft in drafts:
            key = key_of(draft)
            if key is None:
                raise InvalidInput(f"append_once needs details.{IDEMPOTENCY_KEY} on every event")
            keys.append(key)
        if not drafts:
            return []
        # A fixed expression and a placeholder: the key travels as a parameter.
        key_expr = self._json("details." + IDEMPOTENCY_KEY)
        lookup = self._q("SELECT seq FROM ledger_events WHERE " + key_expr + " = ?")  # noqa: S608
        with self._write() as cur:
            # The head is locked first: the lookups and the append see one state.
            self._locked_head(cur)
            known: dict[str, int] = {}
            for key in dict.fromkeys(keys):
                cur.execute(lookup, (key,))
                row = cur.fetchone()
                if row is not None:
                    known[key] = int(row[0])
            fresh: dict[str, EventDraft] = {}
            for key, draft in zip(keys, drafts, strict=True):
                if key not in known:
                    fresh.setdefault(key, draft)
            known.update(zip(fresh, self._append(cur, list(fresh.values())), strict=True))
        return [known[key] for key in keys]

    def _append(self, cur: Cursor, drafts: Sequence[EventDraft]) -> list[int]:
        """Append ``drafts`` inside the caller's write transaction."""
        if not drafts:
            return []
        size, frontier = self._locked_head(cur)
        when = format_time(self._clock.now())
        rows: list[tuple[int, bytes | str, bytes]] = []
        nodes: list[tuple[int, int, bytes]] = []
        body = self._body
        for offset, draft in enumerate(drafts):
            seq = size + offset
            leaf = encode_draft(draft, seq, when)
            h = leaf_hash(leaf)
            rows.append((seq, body(leaf), h))
            nodes.extend(frontier.push(h))
        cur.executemany(
            self._q("INSERT INTO ledger_events (seq, body, leaf_hash) VALUES (?, ?, ?)"), rows
        )
        if nodes:
            cur.executemany(
                self._q("INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)"), nodes
            )
        cur.execute(
            self._q("UPDATE ledger_head SET size = ?, root = ?, frontier = ? WHERE id = 1"),
            (frontier.size, frontier.root(), b"".join(frontier.hashes)),
        )
        return [size + i for i in range(len(drafts))]

    def _locked_head(self, cur: Cursor) -> tuple[int, Frontier]:
        head = "SELECT size, frontier FROM ledger_head WHERE id = 1"
        cur.execute(head + self._lock_suffix())
        size, blob = cur.fetchone()
        blob = bytes(blob)
        hashes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        if len(hashes) != bin(size).count("1"):
            raise IntegrityError(
                f"the stored tree head (size {size}) is corrupt",
                hint="run `kiln audit verify` to find the damaged entries",
            )
        return size, Frontier(size, hashes)

    def _lock_suffix(self) -> str:
        return ""

    def add_checkpoint(self, size: int, note: bytes) -> None:
        with self._write() as cur:
            cur.execute(self._q("SELECT note FROM ledger_checkpoints WHERE size = ?"), (size,))
            row = cur.fetchone()
            if row is None:
                insert = self._q("INSERT INTO ledger_checkpoints (size, note) VALUES (?, ?)")
                cur.execute(insert, (size, note))

    def checkpoints(self) -> list[bytes]:
        with self._read() as cur:
            cur.execute("SELECT note FROM ledger_checkpoints ORDER BY size")
            return [bytes(r[0]) for r in cur.fetchall()]

    def size(self) -> int:
        return self.head().size

    def head(self) -> Checkpoint:
        with self._read() as cur:
            cur.execute("SELECT size, root FROM ledger_head WHERE id = 1")
            size, root = cur.fetchone()
        return Checkpoint(self.origin, int(size), bytes(root))

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        for entry in self.entries(start, stop):
            yield decode(entry.leaf)

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[LogEntry]:
        sql = self._q("SELECT seq, body, leaf_hash FROM ledger_events WHERE seq >= ?")
        params: list[Any] = [start]
        if stop is not None:
            sql += self._q(" AND seq < ?")
            params.append(stop)
        sql += " ORDER BY seq"
        with self._read() as cur:
            cur.execute(sql, params)
            while batch := cur.fetchmany(_FETCH):
                for seq, body, h in batch:
                    yield LogEntry(seq, self._leaf(body), bytes(h))

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        for entry in self.entries(start, stop):
            yield (entry.seq, entry.leaf, entry.stored_hash or b"")

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
        # Only fixed column expressions and placeholders are joined here; every
        # value travels as a parameter.
        where: list[str] = []
        params: list[Any] = []
        if environment is not None:
            where.append(self._json("subject.environment") + " = ?")
            params.append(environment)
        if artifact is not None:
            where.append(self._json("subject.artifact") + " = ?")
            params.append(artifact)
        if release is not None:
            where.append(self._json("subject.release") + " = ?")
            params.append(release)
        if since is not None:
            where.append(self._json("time") + " >= ?")
            params.append(format_time(since))
        if until is not None:
            where.append(self._json("time") + " < ?")
            params.append(format_time(until))
        if kinds:
            where.append(self._json("kind") + " IN (" + ", ".join("?" for _ in kinds) + ")")
            params.extend(str(k) for k in kinds)
        sql = "SELECT body FROM ledger_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        with self._read() as cur:
            cur.execute(self._q(sql), params)
            return [decode(self._leaf(row[0])) for row in cur.fetchall()]

    def level(self, level: int) -> Iterator[tuple[int, bytes]]:
        sql = self._q("SELECT idx, hash FROM ledger_nodes WHERE level = ? ORDER BY idx")
        with self._read() as cur:
            cur.execute(sql, (level,))
            while batch := cur.fetchmany(_FETCH):
                for index, h in batch:
                    yield int(index), bytes(h)

    def node(self, level: int, index: int) -> bytes:
        with self._read() as cur:
            if level == 0:
                cur.execute(self._q("SELECT leaf_hash FROM ledger_events WHERE seq = ?"), (index,))
            else:
                cur.execute(
                    self._q("SELECT hash FROM ledger_nodes WHERE level = ? AND idx = ?"),
                    (level, index),
                )
            row = cur.fetchone()
        if row is None:
            raise NotFound(f"Merkle node ({level}, {index}) is not stored")
        return bytes(row[0])
