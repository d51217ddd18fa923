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

import psycopg

from kiln.adapters.store.migrations import (
    APPEND_ONLY_MESSAGE,
    POSTGRES,
)
from kiln.adapters.store.pgerrors import connect
from kiln.adapters.store.sqlbase import Cursor, SqlLedger
from kiln.errors import ConfigError, Refused, Temporary
from kiln.ports.clock import Clock, SystemClock

MIGRATION_LOCK = 0x6B696C6E  # "kiln": the advisory lock id migrations take


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
        self._conn = connect(dsn, application_name="kiln-ledger", doing="open the ledger")
        self._migrate()

    def _migrate(self) -> None:
        self._apply_migrations(POSTGRES)

    def _lock_migrations(self, cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))

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
