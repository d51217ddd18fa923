"""The ledger in SQLite (``.kiln/state.db``): the default ``LedgerStore``.

WAL journal so readers never block the writer; ``synchronous=FULL`` so a commit
is on disk when ``append`` returns (in WAL mode NORMAL may lose the last commits
on power loss). Writers take SQLite's write lock up front (``BEGIN IMMEDIATE``)
before reading the tree head, so two processes appending at once are serialised:
neither can reuse a seq or fork the tree. ``busy_timeout`` makes the second wait
instead of failing. Reads go through one connection per thread (closed by
``close``), so a reader never sees another thread's append before it commits and
never waits for it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.adapters.store.migrations import (
    APPEND_ONLY_MESSAGE,
    COMPONENT,
    SQLITE,
)
from kiln.adapters.store.sqlbase import Cursor, SqlLedger
from kiln.core.ledger.verify import LogEntry
from kiln.errors import ConfigError, Refused, Temporary
from kiln.ports.clock import Clock, SystemClock

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another's transaction; appends take milliseconds."""


def _translate(exc: sqlite3.Error, path: Path) -> Exception:
    text = str(exc)
    if APPEND_ONLY_MESSAGE in text:
        return Refused("the ledger is append-only: stored events cannot change")
    if "locked" in text or "busy" in text:
        return Temporary(f"the state database {path} is busy: {text}", delay=1.0)
    return ConfigError(
        f"the state database {path} cannot be used: {text}",
        hint="check the file's permissions and free disk space",
    )


class SqliteLedger(SqlLedger):
    P = "?"

    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock or SystemClock())
        self.path = path
        self._lock = threading.RLock()
        # Reads use one connection per thread: on the writer's own connection a
        # reader in another thread would see a transaction before it commits.
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()  # not the writer's lock: readers never wait
        try:
            self._conn = sqlite3.connect(
                str(path),
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._migrate()
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc

    def _migrate(self) -> None:
        self._apply_migrations(SQLITE)

    def schema_version(self) -> int:
        with self._read() as cur:
            cur.execute("SELECT MAX(version) FROM schema_version WHERE component = ?", (COMPONENT,))
            return int(cur.fetchone()[0])

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
            try:
                yield cur
            except BaseException as exc:
                self._conn.rollback()
                if isinstance(exc, sqlite3.Error):
                    raise _translate(exc, self.path) from exc
                raise
            else:
                try:
                    cur.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._conn.rollback()
                    raise _translate(exc, self.path) from exc
            finally:
                cur.close()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    str(self.path),
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        cur = self._reader().cursor()
        try:
            yield cur
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        finally:
            cur.close()

    def _json(self, path: str) -> str:
        return f"json_extract(CAST(body AS TEXT), '$.{path}')"

    def _body(self, leaf: bytes) -> bytes | str:
        return leaf

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[LogEntry]:
        return map(LogEntry._make, self.rows(start, stop))

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes, bytes]]:
        # Rows are (seq, body BLOB, leaf_hash BLOB), already the fields of a
        # ``LogEntry``: the verifier reads the driver's tuples as they come.
        sql = "SELECT seq, body, leaf_hash FROM ledger_events WHERE seq >= ?"
        params: list[int] = [start]
        if stop is not None:
            sql += " AND seq < ?"
            params.append(stop)
        with self._read() as cur:
            yield from cur.execute(sql + " ORDER BY seq", params)

    def close(self) -> None:
        with self._lock, self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._conn.close()
