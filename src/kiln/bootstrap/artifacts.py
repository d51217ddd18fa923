"""Composition of the artifact area: the local store, git, pip and the registry client.

Services receive these as ports; only this module knows the concrete classes.
``recorder`` returns the ledger's ``Recorder`` when the ledger area provides
``kiln.bootstrap.ledger.recorder(state_dir)``; until then events go to an
append-only JSON-lines journal under ``.kiln/logs/`` so nothing is lost.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kiln.core.artifacts.progress import Listener, ignore
from kiln.core.digest import Digest
from kiln.core.ledger.kinds import EventKind
from kiln.ports.artifacts import ArtifactStore, Registry, SourceRepo
from kiln.ports.clock import Clock, SystemClock
from kiln.ports.ledger import Recorder
from kiln.services.build import Builder


def store(state_dir: Path) -> ArtifactStore:
    from kiln.adapters.artifacts.local import LocalStore

    return LocalStore(state_dir / "store")


def registry(
    url: str,
    *,
    insecure: bool = False,
    chunk_size: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Registry:
    """A registry client; credentials come from KILN_REGISTRY_USERNAME/_PASSWORD only.

    The password is never a flag (shell history, process lists) and never printed.
    """
    from kiln.adapters.artifacts.registry import RegistryClient

    env = os.environ if environ is None else environ
    user, password = env.get("KILN_REGISTRY_USERNAME"), env.get("KILN_REGISTRY_PASSWORD")
    credentials = (user, password) if user and password is not None else None
    return RegistryClient.from_url(
        url, insecure=insecure, chunk_size=chunk_size, credentials=credentials
    )


def unpacker(state_dir: Path) -> Callable[[Digest], Path]:
    """``unpack(digest) -> rootfs`` for runtimes: read-only, shared by digest, checked.

    Refuses revoked, missing or corrupt artifacts (``ensure_deployable``).
    """
    from kiln.services.unpack import unpack

    local = store(state_dir)
    instances = state_dir / "instances"
    return lambda digest: unpack(local, digest, instances)


def source_repo() -> SourceRepo:
    from kiln.adapters.artifacts.git import GitRepo

    return GitRepo()


@dataclass
class JournalRecorder:
    """Interim ``Recorder``: one JSON object per line, appended and fsynced."""

    path: Path
    clock: Clock

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
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        event = {
            "kind": str(kind),
            "at": self.clock.now().isoformat(),
            "actor": actor,
            "artifact": artifact,
            "environment": environment,
            "release": release,
            "links": dict(links or {}),
            "details": dict(details or {}),
        }
        line = json.dumps(event, sort_keys=True, default=str) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        with self.path.open("rb") as handle:
            return sum(1 for _ in handle)


def recorder(state_dir: Path, *, clock: Clock | None = None) -> Recorder:
    try:
        ledger = importlib.import_module("kiln.bootstrap.ledger")
        factory = ledger.recorder
    except (ImportError, AttributeError):
        return JournalRecorder(state_dir / "logs" / "events.jsonl", clock or SystemClock())
    return cast(Recorder, factory(state_dir))


def builder(
    state_dir: Path,
    *,
    on_event: Listener = ignore,
    clock: Clock | None = None,
    artifact_store: ArtifactStore | None = None,
    events: Recorder | None = None,
) -> Builder:
    from kiln.adapters.artifacts.git import GitRepo
    from kiln.adapters.artifacts.pip import PipInstaller

    the_clock = clock or SystemClock()
    return Builder(
        store=artifact_store or store(state_dir),
        source=GitRepo(),
        installer=PipInstaller(),
        recorder=events or recorder(state_dir, clock=the_clock),
        clock=the_clock,
        cache_dir=state_dir / "cache",
        on_event=on_event,
    )
