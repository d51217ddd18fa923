"""The ledger in PostgreSQL (psycopg 3): the same ``LedgerStore`` for teams.

Same tables as SQLite (``kiln.adapters.store.migrations``). A writer locks the
single ``ledger_head`` row (``SELECT ... FOR UPDATE``) before reading it, so
appends from several controllers are serialised exactly as on SQLite. Commits are
durable as far as the server's ``synchronous_commit`` allows (on by default).
Migrations are serialised with a transaction-level advisory lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg

from kiln.adapters.store.migrations import (
    APPEND_ONLY_MESSAGE,
    COMPONENT,
    POSTGRES,
    SCHEMA_VERSION_TABLE,
)
from kiln.adapters.store.sqlbase import Cursor, SqlLedger
from kiln.core.ledger.merkle import EMPTY_ROOT
from kiln.errors import ConfigError, Refused, Temporary
from kiln.ports.clock import Clock, SystemClock

_MIGRATION_LOCK = 0x6B696C6E  # "kiln": the advisory lock id migrations take


def _translate(exc: psycopg.Error) -> Exception:
    text = str(exc).strip()
    if APPEND_ONLY_MESSAGE in text:
        return Refused("the ledger is append-only: stored events cannot change")
    if isinstance(exc, psycopg.OperationalError):
        return Temporary(f"PostgreSQL is unavailable: {text}", delay=2.0)
    return ConfigError(f"PostgreSQL refused the ledger: {text}")


class PostgresLedger(SqlLedger):
    P = "%s"

    def __init__(self, dsn: str, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock or SystemClock())
        self._lock = threading.RLock()
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise _translate(exc) from exc
        self._migrate()

    def _migrate(self) -> None:
        with self._write() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(SCHEMA_VERSION_TABLE)
            cur.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version WHERE component = %s",
                (COMPONENT,),
            )
            current = int(cur.fetchone()[0])
            for version, statements in POSTGRES:
                if version <= current:
                    continue
                for statement in statements:
                    cur.execute(statement)
                if version == 1:
                    cur.execute(
                        "INSERT INTO ledger_meta (key, value) VALUES ('log_id', %s)",
                        (self.new_log_id(),),
                    )
                    cur.execute(
                        "INSERT INTO ledger_head (id, size, root, frontier) VALUES (1, 0, %s, %s)",
                        (EMPTY_ROOT, b""),
                    )
                cur.execute(
                    "INSERT INTO schema_version (component, version, applied_at)"
                    " VALUES (%s, %s, %s)",
                    (COMPONENT, version, datetime.now(UTC).isoformat()),
                )

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise _translate(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    yield cur
            except psycopg.Error as exc:
                raise _translate(exc) from exc

    def _lock_suffix(self) -> str:
        return " FOR UPDATE"

    def _json(self, path: str) -> str:
        return f"((body::jsonb) #>> '{{{path.replace('.', ',')}}}')"

    def close(self) -> None:
        self._conn.close()
