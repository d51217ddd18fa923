"""Builds the ledger for a state directory: the SQLite store, the ledger key, and
where checkpoints are kept outside the database.

The ledger key (``keys/ledger.key``, Ed25519) signs checkpoints. It is created
on first use and its creation is recorded as a ``key.change`` event, so the log
itself says since when the key exists. ``KILN_LEDGER_KEY`` is deliberately not a
setting: the key lives with the state it vouches for.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from kiln.adapters.keys.file import FileSigner, generate, load_public_pem
from kiln.adapters.store.sqlite import SqliteLedger
from kiln.bootstrap.database import shared_database
from kiln.core.ledger.checkpoint import note_key_id, vkey
from kiln.core.ledger.kinds import EventKind
from kiln.ports.clock import Clock, SystemClock
from kiln.ports.ledger import LedgerStore

DB_NAME = "state.db"
KEY_NAME = "ledger.key"


@dataclass
class Ledger:
    store: LedgerStore
    state_dir: Path

    @property
    def checkpoint_dir(self) -> Path:
        return self.state_dir / "ledger" / "checkpoints"

    @property
    def key_path(self) -> Path:
        return self.state_dir / "keys" / KEY_NAME

    def signer(self, *, actor: str = "kiln") -> FileSigner:
        """The ledger key; generated (and recorded) on first use."""
        if self.key_path.exists():
            return FileSigner.from_file(self.key_path)
        signer = generate(self.key_path)
        origin = self.store.origin
        self.store.record(
            EventKind.KEY_CHANGE,
            actor=actor,
            details={
                "purpose": "ledger checkpoints",
                "key_id": signer.key_id,
                "note_key_id": note_key_id(origin, signer.public_key).hex(),
                "public_key": base64.b64encode(signer.public_key).decode(),
                "vkey": vkey(origin, signer.public_key),
            },
        )
        return signer

    def public_key(self, override: Path | None = None) -> bytes:
        if override is not None:
            return load_public_pem(override)
        return self.signer().public_key

    def close(self) -> None:
        self.store.close()


def open_ledger(state_dir: Path, *, clock: Clock | None = None, dsn: str | None = None) -> Ledger:
    """The ledger of ``state_dir``: ``state.db`` there, or PostgreSQL when ``dsn`` is given
    or ``KILN_DATABASE`` is set (keys and the checkpoint copies stay in ``state_dir``
    either way)."""
    dsn = dsn or shared_database()
    if dsn is not None:
        from kiln.adapters.store.postgres import PostgresLedger

        return Ledger(store=PostgresLedger(dsn, clock=clock or SystemClock()), state_dir=state_dir)
    store = SqliteLedger(state_dir / DB_NAME, clock=clock or SystemClock())
    return Ledger(store=store, state_dir=state_dir)


def recorder(state_dir: Path, *, database: str | None = None) -> LedgerStore:
    """The ``Recorder`` other wiring hands to services (``kiln.bootstrap.trust.recorder``
    can return this): the state directory's ledger, open for the life of the process."""
    return open_ledger(state_dir, dsn=database).store
