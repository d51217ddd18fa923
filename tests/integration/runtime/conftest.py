"""Fixtures of the runtime integration tests: a read-only hello tree, a provider
under a throwaway state directory, and cleanup that kills every process the
provider made (by its owner marker), even when a test fails."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.adapters.runtime import procfs
from kiln.adapters.runtime.process import ProcessProvider
from kiln.adapters.secrets.filestore import FileSecretStore
from kiln.adapters.secrets.resolver import SecretResolver
from kiln.core.runtime.model import LaunchSpec, Limits
from tests.integration.runtime.trees import CMD, hello_tree, make_writable

ARTIFACT = "sha256:" + "a" * 64
CONFIG = "sha256:" + "c" * 64


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = hello_tree(tmp_path_factory.mktemp("artifact") / "root")
    yield root
    make_writable(root)


def hello_spec(
    root: Path,
    *,
    config: dict[str, str] | None = None,
    sandbox: str = "none",
    network: str = "isolated",
    release: str = "r1",
    **extra: object,
) -> LaunchSpec:
    return LaunchSpec(
        service="hello",
        environment="dev",
        release=release,
        artifact=ARTIFACT,
        config_digest=CONFIG,
        root=root,
        command=tuple(CMD),
        config=config or {},
        limits=Limits(sandbox=sandbox, network=network),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def kill_owned(owner: str) -> None:
    for process in procfs.labelled_processes(owner):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / ".kiln"
    state.mkdir(mode=0o700)
    yield state
    kill_owned(str(state.resolve()))


def make_provider(state: Path, **options: object) -> ProcessProvider:
    store = FileSecretStore.in_state_dir(state)
    return ProcessProvider(
        state,
        resolver=SecretResolver(store=store, environ=options.pop("environ", {})),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def provider(state_dir: Path) -> ProcessProvider:
    return make_provider(state_dir, bwrap=None)


_CREATE_AND_EXIT = """
import sys, json
from pathlib import Path
from tests.integration.runtime.conftest import hello_spec, make_provider
provider = make_provider(Path(sys.argv[1]))
made = provider.create(hello_spec(Path(sys.argv[2]), sandbox=sys.argv[3]), int(sys.argv[4]))
provider.wait_ready([i.id for i in made], timeout=20)
print(json.dumps([[i.id.value, i.pid, i.port] for i in made]))
"""


def create_and_exit(state: Path, tree: Path, *, sandbox: str, count: int = 3) -> list[list[str]]:
    """Create instances from a process that then exits, as a stopped controller would.

    Returns ``[instance id, pid, port]`` of each.
    """
    out = subprocess.run(
        [sys.executable, "-c", _CREATE_AND_EXIT, str(state), str(tree), sandbox, str(count)],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]
