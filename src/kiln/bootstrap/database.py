"""Where desired state lives: ``state.db`` in the state directory, or the PostgreSQL
database controllers share (``KILN_DATABASE``).

With ``KILN_DATABASE`` set, PostgreSQL holds everything controllers on several
hosts must agree on: the leader locks and terms (``pgleader``), desired state
and the analysis journal (``pgdesired``) and the ledger (``postgres``). Each
host keeps its own state directory for what is local to it: the artifact
store, unpacked trees, instances, routers, keys and tokens.

The DSN is read from the process environment only: it holds a password, so it
is neither a flag (shell history, process lists) nor a ``kiln.yaml`` key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.adapters.store.pgdesired import PostgresDesiredState

DB_NAME = "state.db"

DesiredStore = SqliteDesiredState | PostgresDesiredState


def shared_database(environ: Mapping[str, str] | None = None) -> str | None:
    """The PostgreSQL DSN controllers share, or None when state stays in ``state.db``."""
    value = (os.environ if environ is None else environ).get("KILN_DATABASE", "")
    return value or None


def desired_state(state_dir: Path, *, namespace: str, database: str | None) -> DesiredStore:
    """The desired state (and analysis journal): PostgreSQL under ``namespace`` (the
    service, as for its leader locks) when ``database`` is set, else ``state.db``."""
    if database:
        return PostgresDesiredState(database, namespace=namespace)
    return SqliteDesiredState(state_dir / DB_NAME)
