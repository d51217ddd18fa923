"""Desired state in PostgreSQL (psycopg 3): ``DesiredState`` and ``AnalysisJournal``
shared by controllers on several hosts (``KILN_DATABASE``).

The same behaviour as the SQLite store (``kiln.adapters.store.desired``), the
same stored text (``kiln.adapters.store.statecodec``), on tables named
``kiln_*`` with a ``namespace`` column (the service, as for the leader locks),
so services sharing one database never see each other's state. Each write is
one transaction on this store's own connection; the connection is re-opened
after a failure, and a failure is a kiln error (``kiln.adapters.store.pgerrors``).

Schema: versioned in ``schema_version`` (component ``desired``), next to the
ledger's rows; migrations run in one transaction under the advisory lock the
ledger's migrations take, plus the lock ``kiln.adapters.store.pgleader`` takes
to create ``kiln_leader_terms``, so any number of controllers, ledgers and
leader locks may start at once on an empty database.

Terms: the environment's row in ``kiln_leader_terms`` (written by
``PostgresLeaderLock`` when it wins a lock) holds two numbers: ``epoch``, the
newest term issued, and ``opened``, the newest term a leader opened here.
``term`` is the newest issued, so a term is current from the moment its lock
is won: the old leader's writes are refused before the new one has opened it.
``open_term(e)`` is refused unless ``e`` is above every opened term and not
below the newest issued one. A fenced write reads the row ``FOR SHARE`` in its
own transaction and goes ahead only if both numbers equal its epoch; the row
lock holds a concurrent new term back until the write has committed, so a
write and a term change are never interleaved.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg

from kiln.adapters.store.migrations import SCHEMA_VERSION_TABLE
from kiln.adapters.store.pgerrors import connect, translate
from kiln.adapters.store.pgleader import TERMS_TABLE, lock_key
from kiln.adapters.store.postgres import MIGRATION_LOCK
from kiln.adapters.store.statecodec import (
    document_text,
    rollout_of,
    rollout_text,
    round_text,
    verified_document,
)
from kiln.core.digest import Digest
from kiln.core.release import Release, ReleaseId
from kiln.core.rollout.planner import RolloutState
from kiln.errors import StaleLeader
from kiln.ports.state import EnvironmentState, Signal

COMPONENT = "desired"

Cursor = psycopg.Cursor[tuple[Any, ...]]

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE kiln_releases ("
            " namespace TEXT NOT NULL, id TEXT NOT NULL, environment TEXT NOT NULL,"
            " artifact TEXT NOT NULL, config TEXT NOT NULL, document TEXT NOT NULL,"
            " PRIMARY KEY (namespace, id))",
            "CREATE TABLE kiln_environments ("
            " namespace TEXT NOT NULL, name TEXT NOT NULL, stable TEXT,"
            " paused BOOLEAN NOT NULL DEFAULT FALSE, pinned TEXT, PRIMARY KEY (namespace, name))",
            "CREATE TABLE kiln_rollouts ("
            " namespace TEXT NOT NULL, environment TEXT NOT NULL, state TEXT NOT NULL,"
            " PRIMARY KEY (namespace, environment))",
            "CREATE TABLE kiln_stable_history ("
            " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " namespace TEXT NOT NULL, environment TEXT NOT NULL, release TEXT NOT NULL)",
            "CREATE INDEX kiln_stable_history_env"
            " ON kiln_stable_history (namespace, environment, seq)",
            "CREATE TABLE kiln_signals ("
            " namespace TEXT NOT NULL, environment TEXT NOT NULL, signal TEXT NOT NULL,"
            " PRIMARY KEY (namespace, environment, signal))",
            "CREATE TABLE kiln_analysis_rounds ("
            " namespace TEXT NOT NULL, environment TEXT NOT NULL, deployment TEXT NOT NULL,"
            " step INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,"
            " PRIMARY KEY (namespace, environment, deployment, step, seq))",
            TERMS_TABLE,
            "ALTER TABLE kiln_leader_terms"
            " ADD COLUMN IF NOT EXISTS opened BIGINT NOT NULL DEFAULT 0",
        ],
    ),
]


# A transaction here is a handful of statements. One left open longer than this is a
# client that stopped mid-write (SIGSTOP, a frozen VM): the server ends its session,
# so the row lock its fence holds on the terms row cannot keep a successor's new
# term (and every other write) waiting until TCP notices.
STUCK_AFTER = 5.0  # seconds
LOCK_WAIT = 10.0  # seconds a write waits for a row lock before it is Temporary


class PostgresDesiredState:
    def __init__(self, dsn: str, *, namespace: str, stuck_after: float = STUCK_AFTER) -> None:
        self._dsn = dsn
        self._namespace = namespace
        self._stuck_after = stuck_after
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._migrate()

    # --- connection and transactions ------------------------------------------------------

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            conn = connect(
                self._dsn, application_name="kiln-desired", doing="open the desired state"
            )
            try:
                for name, seconds in (
                    ("idle_in_transaction_session_timeout", self._stuck_after),
                    ("lock_timeout", LOCK_WAIT),
                ):
                    conn.execute(f"SET {name} = {int(seconds * 1000)}")  # fixed names, numbers
            except psycopg.Error as exc:
                conn.close()
                raise translate(exc, self._dsn, doing="open the desired state") from None
            self._conn = conn
        return self._conn

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Cursor]:
        """One transaction; a psycopg error becomes a kiln error (and a new connection
        next time if this one broke). Kiln errors raised inside roll it back."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    self._conn = None
                raise translate(exc, self._dsn, doing=doing) from None

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        """A read: one statement, autocommit (its own snapshot)."""
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(sql, args).fetchall()
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    self._conn = None
                raise translate(exc, self._dsn, doing="read the desired state") from None

    def _migrate(self) -> None:
        """Apply every migration newer than the recorded version, in one transaction."""
        with self._transaction("migrate the desired state's tables") as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("", "kiln_leader_terms"),))
            cur.execute(SCHEMA_VERSION_TABLE)
            current = self._version(cur)
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_version (component, version, applied_at)"
                    " VALUES (%s, %s, %s)",
                    (COMPONENT, version, datetime.now(UTC).isoformat()),
                )

    @staticmethod
    def _version(cur: Cursor) -> int:
        cur.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version WHERE component = %s",
            (COMPONENT,),
        )
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def schema_version(self) -> int:
        with self._transaction("read the schema version") as cur:
            return self._version(cur)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _write(self, sql: str, args: tuple[object, ...], *, fence: tuple[str, int | None]) -> None:
        with self._transaction("write the desired state") as cur:
            self._fence(cur, *fence)
            cur.execute(sql, (self._namespace, *args))

    # --- terms (fencing) ------------------------------------------------------------------

    def term(self, environment: str) -> int:
        """The newest term issued for the environment (0 before the first)."""
        rows = self._rows(
            "SELECT epoch FROM kiln_leader_terms WHERE namespace = %s AND environment = %s",
            (self._namespace, environment),
        )
        return int(rows[0][0]) if rows else 0

    def open_term(self, environment: str, epoch: int) -> None:
        with self._transaction("open a term") as cur:
            cur.execute(
                "INSERT INTO kiln_leader_terms (namespace, environment, epoch) VALUES (%s, %s, 0) "
                "ON CONFLICT (namespace, environment) DO NOTHING",
                (self._namespace, environment),
            )
            issued, opened = self._term_row(cur, environment, "FOR UPDATE")
            if epoch <= opened or epoch < issued:
                raise StaleLeader(
                    f"{environment}: term {epoch} is not newer than term {max(issued, opened)}",
                    hint="another controller became the leader meanwhile",
                )
            cur.execute(
                "UPDATE kiln_leader_terms SET epoch = GREATEST(epoch, %s), opened = %s "
                "WHERE namespace = %s AND environment = %s",
                (epoch, epoch, self._namespace, environment),
            )

    def _term_row(self, cur: Cursor, environment: str, lock: str) -> tuple[int, int]:
        cur.execute(
            "SELECT epoch, opened FROM kiln_leader_terms "  # noqa: S608 - lock is a fixed clause
            f"WHERE namespace = %s AND environment = %s {lock}",
            (self._namespace, environment),
        )
        row = cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def _fence(self, cur: Cursor, environment: str, epoch: int | None) -> None:
        """Inside a write transaction: refuse it unless ``epoch`` is the current term."""
        if epoch is None:
            return
        issued, opened = self._term_row(cur, environment, "FOR SHARE")
        if not issued == opened == epoch:
            raise StaleLeader.term_over(environment, epoch, issued)

    # --- releases -------------------------------------------------------------------------

    def put_release(
        self, release: Release, document: Mapping[str, Any], *, epoch: int | None = None
    ) -> None:
        self._write(
            "INSERT INTO kiln_releases (namespace, id, environment, artifact, config, document) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (namespace, id) DO NOTHING",
            (
                release.id,
                release.environment,
                release.artifact,
                release.config,
                document_text(release, document),
            ),
            fence=(release.environment, epoch),
        )

    def release_config(self, release_id: ReleaseId) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT config, document FROM kiln_releases WHERE namespace = %s AND id = %s",
            (self._namespace, release_id),
        )
        return verified_document(release_id, rows[0][0], rows[0][1]) if rows else None

    def release(self, release_id: ReleaseId) -> Release | None:
        rows = self._rows(
            "SELECT id, environment, artifact, config FROM kiln_releases "
            "WHERE namespace = %s AND id = %s",
            (self._namespace, release_id),
        )
        if not rows:
            return None
        row = rows[0]
        return Release(ReleaseId(row[0]), row[1], Digest(row[2]), Digest(row[3]))

    # --- environments ---------------------------------------------------------------------

    def environments(self) -> list[str]:
        """Every environment named anywhere in the state (for gc's retention), sorted."""
        ns = self._namespace
        rows = self._rows(
            "SELECT name FROM kiln_environments WHERE namespace = %s "
            "UNION SELECT environment FROM kiln_stable_history WHERE namespace = %s "
            "UNION SELECT environment FROM kiln_rollouts WHERE namespace = %s "
            "UNION SELECT environment FROM kiln_releases WHERE namespace = %s ORDER BY 1",
            (ns, ns, ns, ns),
        )
        return [str(r[0]) for r in rows]

    def environment(self, name: str) -> EnvironmentState:
        rows = self._rows(
            "SELECT stable, paused, pinned FROM kiln_environments "
            "WHERE namespace = %s AND name = %s",
            (self._namespace, name),
        )
        if not rows:
            return EnvironmentState(name, None)
        stable, paused, pinned = rows[0]
        return EnvironmentState(
            name,
            ReleaseId(stable) if stable else None,
            bool(paused),
            ReleaseId(pinned) if pinned else None,
        )

    def _upsert(self, name: str, column: str, value: object) -> None:
        if column not in {"paused", "pinned"}:  # pragma: no cover - internal
            raise ValueError(column)
        self._write(
            f"INSERT INTO kiln_environments (namespace, name, {column}) VALUES (%s, %s, %s) "  # noqa: S608 - fixed names
            f"ON CONFLICT (namespace, name) DO UPDATE SET {column} = excluded.{column}",
            (name, value),
            fence=(name, None),
        )

    def set_stable(
        self, name: str, release_id: ReleaseId | None, *, epoch: int | None = None
    ) -> None:
        ns = self._namespace
        with self._transaction("write the stable release") as cur:
            self._fence(cur, name, epoch)
            cur.execute(
                "INSERT INTO kiln_environments (namespace, name, stable) VALUES (%s, %s, %s) "
                "ON CONFLICT (namespace, name) DO UPDATE SET stable = excluded.stable",
                (ns, name, release_id),
            )
            cur.execute(
                "SELECT release FROM kiln_stable_history WHERE namespace = %s "
                "AND environment = %s ORDER BY seq DESC LIMIT 1",
                (ns, name),
            )
            last = cur.fetchone()
            if release_id is not None and (last is None or last[0] != release_id):
                cur.execute(
                    "INSERT INTO kiln_stable_history (namespace, environment, release) "
                    "VALUES (%s, %s, %s)",
                    (ns, name, release_id),
                )

    def stable_history(self, name: str) -> list[ReleaseId]:
        rows = self._rows(
            "SELECT release FROM kiln_stable_history WHERE namespace = %s AND environment = %s "
            "ORDER BY seq",
            (self._namespace, name),
        )
        return [ReleaseId(r[0]) for r in rows]

    def set_paused(self, name: str, paused: bool) -> None:
        self._upsert(name, "paused", paused)

    def set_pin(self, name: str, release_id: ReleaseId | None) -> None:
        self._upsert(name, "pinned", release_id)

    # --- rollouts and signals -------------------------------------------------------------

    def save_rollout(self, state: RolloutState, *, epoch: int | None = None) -> None:
        self._write(
            "INSERT INTO kiln_rollouts (namespace, environment, state) VALUES (%s, %s, %s) "
            "ON CONFLICT (namespace, environment) DO UPDATE SET state = excluded.state",
            (state.environment, rollout_text(state)),
            fence=(state.environment, epoch),
        )

    def rollout(self, name: str) -> RolloutState | None:
        rows = self._rows(
            "SELECT state FROM kiln_rollouts WHERE namespace = %s AND environment = %s",
            (self._namespace, name),
        )
        return rollout_of(rows[0][0]) if rows else None

    def signal(self, name: str, signal: Signal, *, epoch: int | None = None) -> None:
        self._write(
            "INSERT INTO kiln_signals (namespace, environment, signal) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (name, str(signal)),
            fence=(name, epoch),
        )

    def take_signals(self, name: str, *, epoch: int | None = None) -> frozenset[Signal]:
        with self._transaction("take the signals") as cur:
            self._fence(cur, name, epoch)
            cur.execute(
                "DELETE FROM kiln_signals WHERE namespace = %s AND environment = %s "
                "RETURNING signal",
                (self._namespace, name),
            )
            rows = cur.fetchall()
        return frozenset(Signal(r[0]) for r in rows)

    # --- AnalysisJournal ------------------------------------------------------------------

    def append_round(
        self,
        environment: str,
        deployment: str,
        step: int,
        seq: int,
        body: Mapping[str, Any],
        *,
        epoch: int | None = None,
    ) -> None:
        self._write(
            "INSERT INTO kiln_analysis_rounds"
            " (namespace, environment, deployment, step, seq, body)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (environment, deployment, step, seq, round_text(body)),
            fence=(environment, epoch),
        )

    def rounds(self, environment: str, deployment: str, step: int) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT body FROM kiln_analysis_rounds WHERE namespace = %s AND environment = %s "
            "AND deployment = %s AND step = %s ORDER BY seq",
            (self._namespace, environment, deployment, step),
        )
        return [json.loads(r[0]) for r in rows]

    def forget_rounds(
        self,
        environment: str,
        *,
        keep: tuple[str, int] | None = None,
        epoch: int | None = None,
    ) -> None:
        if keep is None:
            self._write(
                "DELETE FROM kiln_analysis_rounds WHERE namespace = %s AND environment = %s",
                (environment,),
                fence=(environment, epoch),
            )
            return
        self._write(
            "DELETE FROM kiln_analysis_rounds WHERE namespace = %s AND environment = %s "
            "AND NOT (deployment = %s AND step = %s)",
            (environment, keep[0], keep[1]),
            fence=(environment, epoch),
        )
