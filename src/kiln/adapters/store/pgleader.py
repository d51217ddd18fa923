"""Leadership per environment through PostgreSQL session advisory locks.

One dedicated connection (a *session*) holds ``pg_try_advisory_lock(key)`` for
each environment this controller leads, for as long as it leads. PostgreSQL
releases a session's advisory locks when the session ends -- the process dies,
the connection is cut, an operator runs ``pg_terminate_backend`` -- so, as with
the ``flock`` of ``kiln.adapters.store.leader``, leadership is never stranded.
The other side of that coin: losing the session loses leadership. ``check``
(called before every claim, so about once a second) notices a dead session,
drops everything it held and reconnects; the controller stops the workers of
environments it no longer holds.

Keys are 64-bit (``pg_try_advisory_lock(bigint)``): the first eight bytes of
SHA-256 over ``kiln/leader/<namespace>/<environment>``, so services sharing one
database never contend, and kiln's migration lock (a small constant) is apart.

Terms: right after winning an environment's lock, the same session bumps the
environment's row in ``kiln_leader_terms`` and reads the new epoch, above both
the last epoch PostgreSQL issued and the state store's current term
(``above``), so switching from file locks to PostgreSQL never reissues an
epoch the store has seen. The epoch is the fencing token the controller opens
its term with; a session cut under a leader that has not noticed yet leaves it
holding an old epoch the store refuses.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading

import psycopg

from kiln.adapters.store.pgerrors import translate

TERMS_TABLE = (
    "CREATE TABLE IF NOT EXISTS kiln_leader_terms ("
    " namespace TEXT NOT NULL, environment TEXT NOT NULL, epoch BIGINT NOT NULL,"
    " PRIMARY KEY (namespace, environment))"
)
_NEXT_TERM = (
    "INSERT INTO kiln_leader_terms (namespace, environment, epoch) VALUES (%s, %s, %s) "
    "ON CONFLICT (namespace, environment) DO UPDATE "
    "SET epoch = GREATEST(kiln_leader_terms.epoch + 1, excluded.epoch) RETURNING epoch"
)


def lock_key(namespace: str, environment: str) -> int:
    """The signed 64-bit advisory lock key of one environment."""
    digest = hashlib.sha256(f"kiln/leader/{namespace}/{environment}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLeaderLock:
    def __init__(self, dsn: str, *, namespace: str) -> None:
        self._dsn = dsn
        self._namespace = namespace
        self._held: set[str] = set()
        self._epochs: dict[str, int] = {}
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _session(self) -> psycopg.Connection[tuple[object, ...]] | None:
        if self._conn is None or self._conn.closed:
            try:
                conn = psycopg.connect(self._dsn, autocommit=True, application_name="kiln-leader")
                # Two controllers starting at once must not race on the catalog.
                with conn.transaction():
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s)", (lock_key("", "kiln_leader_terms"),)
                    )
                    conn.execute(TERMS_TABLE)
                self._conn = conn
            except psycopg.OperationalError:
                self._conn = None  # the database is down: lead nothing, try again later
            except psycopg.Error as exc:
                raise translate(exc, self._dsn, doing="open the leadership session") from None
        return self._conn

    def _lost(self) -> None:
        self._held.clear()
        self._epochs.clear()
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):  # closing a dead socket
                self._conn.close()
        self._conn = None

    def check(self) -> frozenset[str]:
        """Ping the session; if it is gone, so is every lock it held. What we still hold."""
        with self._lock:
            if self._conn is not None and self._held:
                try:
                    self._conn.execute("SELECT 1")
                except psycopg.Error:
                    self._lost()
            return frozenset(self._held)

    def try_acquire(self, environment: str, *, above: int = 0) -> bool:
        self.check()
        with self._lock:
            if environment in self._held:
                return True
            conn = self._session()
            if conn is None:
                return False
            try:
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (lock_key(self._namespace, environment),)
                ).fetchone()
                if row is None or row[0] is not True:
                    return False
                term = conn.execute(
                    _NEXT_TERM, (self._namespace, environment, above + 1)
                ).fetchone()
            except psycopg.Error:
                term = None
            if term is None or not isinstance(term[0], int):  # the session died meanwhile
                self._lost()
                return False
            self._held.add(environment)
            self._epochs[environment] = term[0]
            return True

    def epoch(self, environment: str) -> int | None:
        with self._lock:
            return self._epochs.get(environment) if environment in self._held else None

    def release(self, environment: str) -> None:
        with self._lock:
            if environment not in self._held:
                return
            self._held.discard(environment)
            self._epochs.pop(environment, None)
            if self._conn is None:
                return
            try:
                self._conn.execute(
                    "SELECT pg_advisory_unlock(%s)", (lock_key(self._namespace, environment),)
                )
            except psycopg.Error:
                self._lost()

    def held(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._held)

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            self._epochs.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
