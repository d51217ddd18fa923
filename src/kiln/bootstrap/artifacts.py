"""Composition of the artifact area: the local store, git, pip and the registry client.

Services receive these as ports; only this module knows the concrete classes.
``recorder`` is the state directory's ledger (``kiln.bootstrap.ledger``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from kiln.core.artifacts.progress import Listener, ignore
from kiln.core.digest import Digest
from kiln.ports.artifacts import ArtifactStore, Registry, ReleaseHistory, SourceRepo
from kiln.ports.clock import Clock, SystemClock
from kiln.ports.ledger import Recorder
from kiln.services.build import Builder


def store(state_dir: Path) -> ArtifactStore:
    from kiln.adapters.artifacts.local import LocalStore

    return LocalStore(state_dir / "store")


@contextmanager
def release_history(
    state_dir: Path, *, namespace: str | None = None
) -> Iterator[ReleaseHistory | None]:
    """The controller's desired state for gc: the shared PostgreSQL one under
    ``KILN_DATABASE`` (``namespace`` is the service), else ``state.db`` if there is one."""
    from kiln.bootstrap.database import desired_state, shared_database

    database = shared_database() if namespace else None
    if database is None and not (state_dir / "state.db").is_file():
        yield None
        return
    desired = desired_state(state_dir, namespace=namespace or "", database=database)
    try:
        yield desired
    finally:
        desired.close()


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


def recorder(state_dir: Path) -> Recorder:
    """The state directory's ledger: every build, tag and revocation is an event there."""
    from kiln.bootstrap.ledger import recorder as ledger_recorder

    return ledger_recorder(state_dir)


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
        recorder=events or recorder(state_dir),
        clock=the_clock,
        cache_dir=state_dir / "cache",
        on_event=on_event,
    )
