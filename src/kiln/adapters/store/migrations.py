"""Versioned schema of the ledger tables, per dialect.

``schema_version`` holds one row per (component, version) applied, so other kiln
components may keep their own migrations in the same database. A migration is
applied inside the writer's transaction; openers racing on a fresh database
serialise on it and the loser sees the version already applied.
"""

from __future__ import annotations

COMPONENT = "ledger"

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    component  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (component, version)
)
"""

_APPEND_ONLY = "the ledger is append-only"

SQLITE: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE ledger_events ("
            " seq INTEGER PRIMARY KEY CHECK (seq >= 0),"
            " body BLOB NOT NULL,"
            " leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32))",
            # The leaf bytes are stored as they are hashed (a BLOB); the JSON
            # functions read them through CAST, which SQLite may index.
            "CREATE INDEX ledger_events_env"
            " ON ledger_events (json_extract(CAST(body AS TEXT), '$.subject.environment'), seq)",
            "CREATE INDEX ledger_events_artifact"
            " ON ledger_events (json_extract(CAST(body AS TEXT), '$.subject.artifact'), seq)",
            "CREATE INDEX ledger_events_release"
            " ON ledger_events (json_extract(CAST(body AS TEXT), '$.subject.release'), seq)",
            "CREATE TABLE ledger_nodes ("
            " level INTEGER NOT NULL CHECK (level >= 1),"
            " idx INTEGER NOT NULL,"
            " hash BLOB NOT NULL CHECK (length(hash) = 32),"
            " PRIMARY KEY (level, idx)) WITHOUT ROWID",
            "CREATE TABLE ledger_head ("
            " id INTEGER PRIMARY KEY CHECK (id = 1),"
            " size INTEGER NOT NULL, root BLOB NOT NULL, frontier BLOB NOT NULL)",
            "CREATE TABLE ledger_checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL)",
            *[
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
                for table in ("ledger_events", "ledger_nodes", "ledger_checkpoints", "ledger_meta")
                for verb in ("UPDATE", "DELETE")
            ],
            # The head may only move forward.
            "CREATE TRIGGER ledger_head_forward BEFORE UPDATE ON ledger_head"
            " WHEN NEW.size < OLD.size"
            f" BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END",
            "CREATE TRIGGER ledger_head_no_delete BEFORE DELETE ON ledger_head"
            f" BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END",
        ],
    ),
]

# Version 2: the idempotency keys the rollout outbox puts in ``details``
# (``kiln.core.ledger.outbox``), indexed where present so ``append_once`` finds a
# key in O(log n). An index over the hashed bytes, not a second copy of the key.
SQLITE.append(
    (
        2,
        [
            "CREATE INDEX ledger_events_idempotency"
            " ON ledger_events (json_extract(CAST(body AS TEXT), '$.details.idempotency_key'))"
            " WHERE json_extract(CAST(body AS TEXT), '$.details.idempotency_key') IS NOT NULL"
        ],
    )
)

POSTGRES: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE ledger_events ("
            " seq BIGINT PRIMARY KEY CHECK (seq >= 0),"
            " body TEXT NOT NULL,"
            " leaf_hash BYTEA NOT NULL CHECK (octet_length(leaf_hash) = 32))",
            "CREATE INDEX ledger_events_env"
            " ON ledger_events (((body::jsonb) #>> '{subject,environment}'), seq)",
            "CREATE INDEX ledger_events_artifact"
            " ON ledger_events (((body::jsonb) #>> '{subject,artifact}'), seq)",
            "CREATE INDEX ledger_events_release"
            " ON ledger_events (((body::jsonb) #>> '{subject,release}'), seq)",
            "CREATE TABLE ledger_nodes ("
            " level INTEGER NOT NULL CHECK (level >= 1),"
            " idx BIGINT NOT NULL,"
            " hash BYTEA NOT NULL CHECK (octet_length(hash) = 32),"
            " PRIMARY KEY (level, idx))",
            "CREATE TABLE ledger_head ("
            " id INTEGER PRIMARY KEY CHECK (id = 1),"
            " size BIGINT NOT NULL, root BYTEA NOT NULL, frontier BYTEA NOT NULL)",
            "CREATE TABLE ledger_checkpoints (size BIGINT PRIMARY KEY, note BYTEA NOT NULL)",
            "CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN RAISE EXCEPTION '{_APPEND_ONLY}'; END $$",
            "CREATE FUNCTION ledger_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF NEW.size < OLD.size THEN"
            f" RAISE EXCEPTION '{_APPEND_ONLY}'; END IF; RETURN NEW; END $$",
            *[
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE"
                f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()"
                for table in ("ledger_events", "ledger_nodes", "ledger_checkpoints", "ledger_meta")
            ],
            "CREATE TRIGGER ledger_head_forward BEFORE UPDATE ON ledger_head"
            " FOR EACH ROW EXECUTE FUNCTION ledger_head_forward()",
            "CREATE TRIGGER ledger_head_no_delete BEFORE DELETE OR TRUNCATE ON ledger_head"
            " FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse()",
        ],
    ),
]

POSTGRES.append(
    (
        2,
        [
            "CREATE INDEX ledger_events_idempotency"
            " ON ledger_events (((body::jsonb) #>> '{details,idempotency_key}'))"
            " WHERE ((body::jsonb) #>> '{details,idempotency_key}') IS NOT NULL"
        ],
    )
)

APPEND_ONLY_MESSAGE = _APPEND_ONLY
