"""Desired state in SQLite (``state.db``, WAL), implementing ``DesiredState``.

Each write is one transaction. The rollout row stores the planner's state as
canonical JSON, so the controller resumes exactly where it was after a crash.
The same class is the ``AnalysisJournal``: the rounds an analysis step read, so
a restarted controller resumes the step's judges instead of restarting it.

The schema is versioned like the ledger's (``schema_version``, one row per
component and version, in the same database): version 1 is the original
tables (written with ``IF NOT EXISTS``, so a database made before versioning
takes it as a no-op), version 2 adds the analysis journal, version 3 the leaders'
terms, version 4 the outbox.

The outbox (``Outbox`` port): ``save_rollout_with_events`` writes the rollout row
and one ``outbox`` row per ledger event in the same transaction; the executor
then appends them to the ledger and clears them. ``seq`` is an AUTOINCREMENT
key, so a number is never handed out twice, even after its row was deleted; and
SQLite commits one writer at a time, so the numbers rise in commit order.

Fencing: each time a controller becomes an environment's leader it opens a
*term* here (``open_term``) with an epoch above every earlier one, and every
write it makes for that environment carries that epoch. The write checks, in
its own transaction, that the epoch is still the environment's current term;
a leader that was paused, or lost its lock without noticing, gets
``StaleLeader`` instead of overwriting its successor's state. A write without
an epoch (operator declarations, tests, tools that drive no rollout) is not
fenced.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln.adapters.store.migrations import SCHEMA_VERSION_TABLE
from kiln.core.canonical import canonical_json
from kiln.core.digest import Digest, digest_bytes
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.outbox import draft_from_json, draft_json
from kiln.core.release import Release, ReleaseId
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.errors import ConfigError, IntegrityError, StaleLeader
from kiln.ports.state import EnvironmentState, PendingEvent, Signal

COMPONENT = "desired"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    id TEXT PRIMARY KEY, environment TEXT NOT NULL, artifact TEXT NOT NULL, config TEXT NOT NULL,
    document TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS environments (
    name TEXT PRIMARY KEY, stable TEXT, paused INTEGER NOT NULL DEFAULT 0, pinned TEXT
);
CREATE TABLE IF NOT EXISTS rollouts (
    environment TEXT PRIMARY KEY, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stable_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, environment TEXT NOT NULL, release TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS signals (
    environment TEXT NOT NULL, signal TEXT NOT NULL, PRIMARY KEY (environment, signal)
);
"""

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [statement.strip() for statement in _SCHEMA.split(";") if statement.strip()]),
    (
        2,
        [
            "CREATE TABLE analysis_rounds ("
            " environment TEXT NOT NULL, deployment TEXT NOT NULL, step INTEGER NOT NULL,"
            " seq INTEGER NOT NULL, body TEXT NOT NULL,"
            " PRIMARY KEY (environment, deployment, step, seq))"
        ],
    ),
    (3, ["CREATE TABLE leader_terms (environment TEXT PRIMARY KEY, epoch INTEGER NOT NULL)"]),
    (
        4,
        [
            "CREATE TABLE outbox ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, environment TEXT NOT NULL,"
            " deployment TEXT NOT NULL, event TEXT NOT NULL)"
        ],
    ),
]


class SqliteDesiredState:
    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the state database {path}: {exc}") from None
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Apply every migration newer than the recorded version, in one transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(SCHEMA_VERSION_TABLE)
            row = self._db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version WHERE component = ?",
                (COMPONENT,),
            ).fetchone()
            for version, statements in MIGRATIONS:
                if version <= int(row[0]):
                    continue
                for statement in statements:
                    self._db.execute(statement)
                self._db.execute(
                    "INSERT INTO schema_version (component, version, applied_at) VALUES (?, ?, ?)",
                    (COMPONENT, version, datetime.now(UTC).isoformat()),
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def schema_version(self) -> int:
        row = self._db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version WHERE component = ?",
            (COMPONENT,),
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    def _write(
        self, sql: str, args: tuple[object, ...], *, fence: tuple[str, int | None] | None = None
    ) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if fence is not None:
                    self._fence(*fence)
                self._db.execute(sql, args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- terms (fencing) -----------------------------------------------------------------

    def term(self, environment: str) -> int:
        """The epoch of the environment's current term; 0 before any leader opened one."""
        row = self._db.execute(
            "SELECT epoch FROM leader_terms WHERE environment = ?", (environment,)
        ).fetchone()
        return int(row[0]) if row else 0

    def open_term(self, environment: str, epoch: int) -> None:
        """Make ``epoch`` the environment's current term; ``StaleLeader`` unless it is
        above the current one (someone else opened that term or a later one)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                current = self.term(environment)
                if epoch <= current:
                    raise StaleLeader(
                        f"{environment}: term {epoch} is not newer than term {current}",
                        hint="another controller became the leader meanwhile",
                    )
                self._db.execute(
                    "INSERT INTO leader_terms (environment, epoch) VALUES (?, ?) "
                    "ON CONFLICT(environment) DO UPDATE SET epoch = excluded.epoch",
                    (environment, epoch),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _fence(self, environment: str, epoch: int | None) -> None:
        """Inside a write transaction: refuse it unless ``epoch`` is the current term."""
        if epoch is None:
            return
        current = self.term(environment)
        if current != epoch:
            raise StaleLeader.term_over(environment, epoch, current)

    def put_release(
        self, release: Release, document: Mapping[str, Any], *, epoch: int | None = None
    ) -> None:
        body = canonical_json(document)
        if digest_bytes(body) != release.config:
            raise IntegrityError(
                f"release {release.id}: the config document does not match digest {release.config}"
            )
        self._write(
            "INSERT OR IGNORE INTO releases (id, environment, artifact, config, document) "
            "VALUES (?, ?, ?, ?, ?)",
            (release.id, release.environment, release.artifact, release.config, body.decode()),
            fence=(release.environment, epoch),
        )

    def release_config(self, release_id: ReleaseId) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT config, document FROM releases WHERE id = ?", (release_id,)
        ).fetchone()
        if row is None:
            return None
        if digest_bytes(row[1].encode()) != row[0]:
            raise IntegrityError(
                f"release {release_id}: its stored config no longer matches {row[0]}",
                hint="the state database was edited; restore it from a backup",
            )
        document: dict[str, Any] = json.loads(row[1])
        return document

    def release(self, release_id: ReleaseId) -> Release | None:
        row = self._db.execute(
            "SELECT id, environment, artifact, config FROM releases WHERE id = ?", (release_id,)
        ).fetchone()
        if row is None:
            return None
        return Release(ReleaseId(row[0]), row[1], Digest(row[2]), Digest(row[3]))

    def environments(self) -> list[str]:
        """Every environment named anywhere in the state (for gc's retention), sorted."""
        rows = self._db.execute(
            "SELECT name FROM environments UNION SELECT environment FROM stable_history "
            "UNION SELECT environment FROM rollouts UNION SELECT environment FROM releases "
            "ORDER BY 1"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def environment(self, name: str) -> EnvironmentState:
        row = self._db.execute(
            "SELECT stable, paused, pinned FROM environments WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return EnvironmentState(name, None)
        stable = ReleaseId(row[0]) if row[0] else None
        pinned = ReleaseId(row[2]) if row[2] else None
        return EnvironmentState(name, stable, bool(row[1]), pinned)

    def _upsert(self, name: str, column: str, value: object) -> None:
        if column not in {"stable", "paused", "pinned"}:  # pragma: no cover - internal
            raise ValueError(column)
        self._write(
            f"INSERT INTO environments (name, {column}) VALUES (?, ?) "  # noqa: S608 - fixed names
            f"ON CONFLICT(name) DO UPDATE SET {column} = excluded.{column}",
            (name, value),
        )

    def set_stable(
        self, name: str, release_id: ReleaseId | None, *, epoch: int | None = None
    ) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._fence(name, epoch)
                self._db.execute(
                    "INSERT INTO environments (name, stable) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET stable = excluded.stable",
                    (name, release_id),
                )
                last = self._db.execute(
                    "SELECT release FROM stable_history WHERE environment = ? "
                    "ORDER BY seq DESC LIMIT 1",
                    (name,),
                ).fetchone()
                if release_id is not None and (last is None or last[0] != release_id):
                    self._db.execute(
                        "INSERT INTO stable_history (environment, release) VALUES (?, ?)",
                        (name, release_id),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def stable_history(self, name: str) -> list[ReleaseId]:
        rows = self._db.execute(
            "SELECT release FROM stable_history WHERE environment = ? ORDER BY seq", (name,)
        ).fetchall()
        return [ReleaseId(r[0]) for r in rows]

    def set_paused(self, name: str, paused: bool) -> None:
        self._upsert(name, "paused", int(paused))

    def set_pin(self, name: str, release_id: ReleaseId | None) -> None:
        self._upsert(name, "pinned", release_id)

    def save_rollout(self, state: RolloutState, *, epoch: int | None = None) -> None:
        self.save_rollout_with_events(state, (), epoch=epoch)

    # --- Outbox ------------------------------------------------------------------------

    def save_rollout_with_events(
        self, state: RolloutState, drafts: Sequence[EventDraft], *, epoch: int | None = None
    ) -> None:
        rows = [
            (state.environment, state.deployment, canonical_json(draft_json(d)).decode())
            for d in drafts
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._fence(state.environment, epoch)
                self._db.execute(
                    "INSERT INTO rollouts (environment, state) VALUES (?, ?) "
                    "ON CONFLICT(environment) DO UPDATE SET state = excluded.state",
                    (state.environment, canonical_json(asdict(state)).decode()),
                )
                if rows:
                    self._db.executemany(
                        "INSERT INTO outbox (environment, deployment, event) VALUES (?, ?, ?)",
                        rows,
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def pending_events(self) -> list[PendingEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, environment, deployment, event FROM outbox ORDER BY seq"
            ).fetchall()
        return [PendingEvent(r[0], r[1], r[2], draft_from_json(json.loads(r[3]))) for r in rows]

    def clear_events(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def rollout(self, name: str) -> RolloutState | None:
        row = self._db.execute(
            "SELECT state FROM rollouts WHERE environment = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        data["phase"] = Phase(data["phase"])
        return RolloutState(**data)

    def signal(self, name: str, signal: Signal, *, epoch: int | None = None) -> None:
        self._write(
            "INSERT OR IGNORE INTO signals (environment, signal) VALUES (?, ?)",
            (name, str(signal)),
            fence=(name, epoch),
        )

    def take_signals(self, name: str, *, epoch: int | None = None) -> frozenset[Signal]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._fence(name, epoch)
                rows = self._db.execute(
                    "SELECT signal FROM signals WHERE environment = ?", (name,)
                ).fetchall()
                self._db.execute("DELETE FROM signals WHERE environment = ?", (name,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return frozenset(Signal(r[0]) for r in rows)

    # --- AnalysisJournal ---------------------------------------------------------------

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
            "INSERT OR IGNORE INTO analysis_rounds (environment, deployment, step, seq, body) "
            "VALUES (?, ?, ?, ?, ?)",
            (environment, deployment, step, seq, canonical_json(body).decode()),
            fence=(environment, epoch),
        )

    def rounds(self, environment: str, deployment: str, step: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT body FROM analysis_rounds WHERE environment = ? AND deployment = ? "
            "AND step = ? ORDER BY seq",
            (environment, deployment, step),
        ).fetchall()
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
                "DELETE FROM analysis_rounds WHERE environment = ?",
                (environment,),
                fence=(environment, epoch),
            )
            return
        self._write(
            "DELETE FROM analysis_rounds WHERE environment = ? "
            "AND NOT (deployment = ? AND step = ?)",
            (environment, keep[0], keep[1]),
            fence=(environment, epoch),
        )
