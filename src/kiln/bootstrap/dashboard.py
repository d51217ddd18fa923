"""Wiring the dashboard: its data source inside the controller, and the login link
``kiln dashboard`` (and ``make demo``) print.

The data source reuses the controller's own executors' provider and router per
environment, opens its own reader on the ledger (SQLite readers never wait for
the writer) and reads versions and tags from the artifact store.

The link: the browser cannot speak to a unix socket, so ``login`` asks the
controller to open its loopback dashboard listener (``POST /v1/dashboard/listener``,
admin; GET-only, bearer tokens as everywhere) and puts the local read-only token
in the URL's fragment. A fragment is never sent to a server (RFC 3986 §3.5), so
the token appears in no request line and no log; the page moves it to
``sessionStorage`` and strips it from the address bar.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from kiln.adapters.keys.file import FileSigner
from kiln.adapters.keys.tokens import LOCAL_READER, read_reader_token
from kiln.bootstrap import artifacts as artifacts_boot
from kiln.bootstrap.controller import connect
from kiln.bootstrap.ledger import Ledger, open_ledger
from kiln.core.artifacts.oci import ANN_VERSION
from kiln.core.digest import Digest
from kiln.core.ledger.verify import Verified
from kiln.ports.artifacts import ArtifactStore
from kiln.services import artifacts as artifact_service
from kiln.services import audit
from kiln.services.controller import Controller
from kiln.services.dashboard import (
    ArtifactFacts,
    Dashboard,
    EnvironmentPorts,
    LedgerWatch,
)


def source(state_dir: Path, controller: Controller) -> tuple[Dashboard, Ledger | None]:
    """The dashboard of a running controller, and the ledger reader to close with it."""
    if controller.spec is None or controller.desired is None:
        bare = Dashboard.status_only(
            controller.status,
            desired=controller.desired,
            clock=controller.clock,
            why="no ledger: this controller has no kiln.yaml",
        )
        return bare, None
    ledger = open_ledger(state_dir)
    environments = {
        env.name: EnvironmentPorts(
            spec=env,
            provider=controller.executors[env.name].provider,
            router=controller.executors[env.name].router,
        )
        for env in controller.spec.environments
        if env.name in controller.executors
    }
    dashboard = Dashboard(
        status=controller.status,
        environments=environments,
        desired=controller.desired,
        events=ledger.store,
        check_ledger=LedgerWatch(
            lambda: verify_ledger(ledger), size=ledger.store.size, clock=controller.clock
        ),
        artifact_facts=_facts(state_dir),
        clock=controller.clock,
    )
    return dashboard, ledger


def verify_ledger(ledger: Ledger) -> tuple[bool, int, str]:
    """Full verification of the stored log against every checkpoint kept (read-only:
    unlike ``kiln audit verify`` it signs no new checkpoint)."""
    store = ledger.store
    key = ledger.key_path
    if not key.exists():
        if store.checkpoints() or (ledger.checkpoint_dir / audit.LATEST).exists():
            return False, 0, f"checkpoints exist but the ledger key {key} is missing"
        public_key = b""  # no checkpoint to open: the key is never used
    else:
        public_key = FileSigner.from_file(key).public_key
    result = audit.verify(store, public_key=public_key, checkpoint_dir=ledger.checkpoint_dir)
    outcome = result.outcome
    if isinstance(outcome, Verified):
        signed = f"{outcome.checkpoints} signed checkpoint{'s' * (outcome.checkpoints != 1)}"
        detail = f"{outcome.size} events re-hashed; the tree matches its head and {signed}"
        return True, outcome.size, detail
    return False, store.size(), f"event {outcome.seq}: {outcome.reason}"


def _facts(state_dir: Path) -> _ArtifactFacts:
    return _ArtifactFacts(artifacts_boot.store(state_dir))


class _ArtifactFacts:
    """Versions never change for a digest (cached forever); tags can be added (re-read)."""

    def __init__(self, store: ArtifactStore) -> None:
        self._store = store
        self._versions: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def __call__(self, artifact: str) -> ArtifactFacts:
        digest = Digest(artifact)
        with self._lock:
            if artifact not in self._versions:
                manifest = artifact_service.load_manifest(self._store, digest)
                self._versions[artifact] = manifest.annotations.get(ANN_VERSION)
            version = self._versions[artifact]
        tags = tuple(sorted(str(t.tag) for t in self._store.tags() if t.digest == digest))
        return ArtifactFacts(version=version, tags=tags)


@dataclass(frozen=True)
class DashboardLink:
    url: str  # the page, without credentials
    login: str | None  # the page with the read-only token in its fragment
    identity: str | None


def login(state_dir: Path, configured: str | None = None) -> DashboardLink:
    """Open (or find) the controller's dashboard listener; the link to give a browser.

    Starts a local controller on demand, like every CLI command."""
    client = connect(state_dir, configured)
    try:
        opened = client.post("/v1/dashboard/listener")
    finally:
        client.close()
    url = str(opened["url"])
    token = read_reader_token(state_dir)
    if token is None:
        return DashboardLink(url=url, login=None, identity=None)
    return DashboardLink(url=url, login=f"{url}#token={token}", identity=LOCAL_READER)


def login_url(state_dir: Path, configured: str | None = None) -> str:
    """The URL to open the dashboard with (for ``make demo``); read-only credentials."""
    link = login(state_dir, configured)
    return link.login or link.url
