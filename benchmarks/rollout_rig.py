"""What the rollout benchmarks share: a state dir, the hello tree, the real
embedded router, the SQLite desired state and the process provider, and a
launcher that runs hello from the tree; all of it torn down on the way out."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.integration.runtime.conftest import kill_owned, make_provider
from tests.integration.runtime.trees import CMD, hello_tree, make_writable
from tests.integration.traffic.conftest import Processes, start_router

from kiln.adapters.runtime.process import ProcessProvider
from kiln.adapters.store.desired import SqliteDesiredState
from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.core.release import Release
from kiln.core.runtime.model import LaunchSpec


@dataclass(frozen=True)
class Rig:
    router: EmbeddedRouterClient
    desired: SqliteDesiredState
    provider: ProcessProvider
    launch: Callable[[Release], LaunchSpec]


def hello_launcher(tree: Path) -> Callable[[Release], LaunchSpec]:
    """A launcher that runs the example app from ``tree``."""

    def launch(release: Release) -> LaunchSpec:
        return LaunchSpec(
            service="hello",
            environment=release.environment,
            release=release.id,
            artifact=release.artifact,
            config_digest=release.config,
            root=tree,
            command=tuple(CMD),
        )

    return launch


@contextmanager
def rollout_rig(prefix: str) -> Iterator[Rig]:
    """Start the router and open the stores in a fresh temp dir; on a clean exit
    close the clients; always kill what the provider started and remove the dir."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    state = work / ".kiln"
    for sub in ("", "run", "logs", "instances", "keys"):
        (state / sub).mkdir(mode=0o700, exist_ok=True)
    tree = hello_tree(work / "root")
    procs = Processes()
    try:
        router_proc = start_router(procs, work)
        router = EmbeddedRouterClient(socket_path=router_proc.admin)
        desired = SqliteDesiredState(state / "state.db")
        provider = make_provider(state, bwrap=None)
        yield Rig(router, desired, provider, hello_launcher(tree))
        router.close()
        desired.close()
    finally:
        kill_owned(str(state.resolve()))
        procs.stop_all()
        make_writable(tree)
        shutil.rmtree(work, ignore_errors=True)
