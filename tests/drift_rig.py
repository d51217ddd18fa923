"""One deployment to inject drift into, for the drift stories on either router.

A state directory, real hello processes (the process provider, no sandbox), the
rollout executor deploying through the ``Router`` port given (the embedded
router's client or HAProxy's), a reconciler over the same stores and an
in-memory ledger. ``drift_rig`` builds it and always takes it down again.
With ``unpacked=True`` every release runs from its own read-only "unpacked"
tree with its recorded listing, and the reconciler checks and refreshes those
trees (tampered-tree drift); otherwise all run from one plain tree.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kiln.adapters.runtime.process import ProcessProvider
from kiln.adapters.secrets.filestore import FileSecretStore
from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.artifacts.tree import tree_digest
from kiln.core.digest import Digest, hex_of
from kiln.core.release import Release
from kiln.core.rollout.planner import Phase
from kiln.core.runtime.model import LaunchSpec, SecretBinding, SecretSource
from kiln.core.spec.models import ServiceSpec
from kiln.ports.clock import SystemClock
from kiln.ports.traffic import Router
from kiln.services.reconcile import Reconciler, store_versions, tree_checker, tree_refresher
from kiln.services.rollout import RolloutExecutor
from kiln.services.unpack import scan_tree
from tests.e2e.test_rollout_executor import V1, VERSIONS, Ledger
from tests.integration.runtime.conftest import kill_owned, make_provider
from tests.integration.runtime.trees import CMD, hello_tree, make_read_only, make_writable


def fake_unpack(instances: Path, digest: Digest, source: Path) -> Path:
    """What ``services.unpack.unpack`` leaves on disk (a shared read-only tree and its
    recorded listing), made from a plain tree instead of an artifact store."""
    home = instances / hex_of(digest)
    if (home / "tree.json").is_file():
        return home / "rootfs"
    work = instances / f".unpack-{secrets.token_hex(4)}"
    shutil.copytree(source, work / "rootfs", symlinks=True)
    make_read_only(work / "rootfs")
    nodes = scan_tree(work / "rootfs")
    record = {
        "digest": digest,
        "tree": tree_digest(nodes),
        "nodes": [n.to_json() for n in sorted(nodes)],
    }
    (work / "tree.json").write_text(json.dumps(record))
    work.rename(home)
    return home / "rootfs"


@dataclass
class DriftRig:
    environment: str
    state: Path
    desired: SqliteDesiredState
    ledger: Ledger
    provider: ProcessProvider
    executor: RolloutExecutor
    reconciler: Reconciler
    unpacks: list[Path] = field(default_factory=list)

    def deploy(self) -> None:
        """V1 on every replica, through the executor, as a fresh deployment."""
        self.executor.start(self.environment, V1)
        assert self.executor.run(self.environment, timeout=90).phase is Phase.SUCCEEDED

    def findings(self) -> list[dict[str, object]]:
        return [e["details"] for e in self.ledger.events if str(e["kind"]) == "drift.found"]

    def heals(self) -> list[dict[str, object]]:
        return [e["details"] for e in self.ledger.events if str(e["kind"]) == "heal"]


@contextmanager
def drift_rig(
    tmp_path: Path,
    spec: ServiceSpec,
    router: Router,
    *,
    unpacked: bool = False,
    secret_store: FileSecretStore | None = None,
) -> Iterator[DriftRig]:
    """The deployment's parts for ``spec``'s single environment; taken down on exit.
    With ``secret_store``, the environment's secrets are bound from that store (same
    names) and the reconciler compares their versions."""
    (environment,) = spec.environments
    state = tmp_path / ".kiln"
    for sub in ("", "run", "logs", "instances", "keys"):
        (state / sub).mkdir(mode=0o700, exist_ok=True)
    source = hello_tree(tmp_path / "source")
    desired = SqliteDesiredState(state / "state.db")
    ledger = Ledger()
    provider = make_provider(state, bwrap=None)
    unpacks: list[Path] = []
    bindings = tuple(
        SecretBinding(name, SecretSource.STORE, ref.key)
        for name, ref in environment.secrets.items()
        if secret_store is not None
    )

    def launch(release: Release) -> LaunchSpec:
        root = source
        if unpacked:
            root = fake_unpack(state / "instances", release.artifact, source)
            unpacks.append(root)
        return LaunchSpec(
            service=spec.service,
            environment=release.environment,
            release=release.id,
            artifact=release.artifact,
            config_digest=release.config,
            root=root,
            command=tuple(CMD),
            config={"APP_VERSION": VERSIONS[release.artifact]},
            secrets=bindings,
        )

    executor = RolloutExecutor(
        spec=spec,
        desired=desired,
        provider=provider,
        router=router,
        recorder=ledger,
        clock=SystemClock(),
        launcher=launch,
        actor="test",
    )
    reconciler = Reconciler(
        spec=spec,
        desired=desired,
        provider=provider,
        router=router,
        recorder=ledger,
        executor=executor,
        actor="test",
        verify_tree=tree_checker(state / "instances") if unpacked else None,
        refresh_tree=tree_refresher(state / "instances") if unpacked else None,
        secret_versions=store_versions(secret_store) if secret_store is not None else None,
    )
    try:
        yield DriftRig(
            environment.name, state, desired, ledger, provider, executor, reconciler, unpacks
        )
    finally:
        desired.close()
        kill_owned(str(state.resolve()))
        for path in [source, state / "instances"]:
            if path.exists():
                make_writable(path)
