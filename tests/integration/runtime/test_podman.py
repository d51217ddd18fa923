"""The podman runtime against real containers of the hello app.

Podman's storage lives under the test's state directory (``--root``/``--runroot``,
vfs driver) and the provider writes this host's ``CONTAINERS_CONF``, so the test
touches no system-wide podman state.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.adapters.runtime.podman import PodmanProvider
from kiln.adapters.secrets.filestore import FileSecretStore
from kiln.adapters.secrets.resolver import SecretResolver
from kiln.core.runtime.model import Healthy, ImageRef, Limits, SecretBinding, SecretSource, State
from kiln.errors import InvalidInput
from tests.integration.runtime.conftest import hello_spec
from tests.integration.runtime.trees import oci_layout, wait_connected

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the podman test runs rootful podman"),
]

SECRET = "podman-Secret-5d2e"


@pytest.fixture(scope="module")
def layout(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A path podman cannot turn into an image name (".kiln", uppercase), as the
    # artifacts store's paths are: the provider must cope.
    where = tmp_path_factory.mktemp("oci") / ".kiln" / "store" / "Layout_"
    where.parent.mkdir(parents=True)
    return oci_layout(tree, where, tag="v1")


@pytest.fixture
def runroot() -> Iterator[Path]:
    # podman refuses a runroot longer than 50 characters; pytest's tmp paths are longer.
    path = Path(tempfile.mkdtemp(prefix="kiln-pr-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def podman(state_dir: Path, runroot: Path) -> Iterator[PodmanProvider]:
    store = FileSecretStore.in_state_dir(state_dir)
    store.put("db", __import__("kiln.ports.secrets", fromlist=["SecretValue"]).SecretValue(SECRET))
    provider = PodmanProvider(
        state_dir,
        resolver=SecretResolver(store=store, environ={}),
        root=state_dir / "podman" / "root",
        runroot=runroot,
        storage_driver="vfs",
    )
    yield provider
    # The provider's own podman invocation: same storage, run state and conf.
    provider._podman("rm", "--all", "--force", "--time", "0", check=False)
    provider._podman("system", "reset", "--force", check=False)


def get(address: str, path: str = "/", timeout: float = 5.0) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as response:
        return response.status, json.loads(response.read())


def test_a_container_is_created_listed_probed_and_destroyed(
    podman: PodmanProvider, tree: Path, layout: Path, runroot: Path
) -> None:
    spec = hello_spec(
        tree,
        config={"APP_VERSION": "2.0.0", "EXTRA_LATENCY_MS": "1500"},
        image=ImageRef(layout, "v1"),
        secrets=(SecretBinding("DB_PASSWORD", SecretSource.STORE, "db"),),
    )
    spec = type(spec)(**{**spec.__dict__, "limits": Limits(memory="128m", cpus=0.5)})
    (instance,) = podman.create(spec, 1)
    result = podman.wait_ready([instance.id], timeout=30)[instance.id]
    assert isinstance(result, Healthy), (result, podman.logs(instance.id))
    # libpod's run state is this storage's own, not the host-wide /run/libpod that
    # another storage's `system reset` deletes.
    assert (runroot / "libpod" / "alive").is_file()

    assert podman.recover().adopted == (instance.id.value,)
    (listed,) = podman.list({"dev.kiln.release": "r1"})
    assert listed.state is State.RUNNING
    assert listed.port == instance.port and listed.host == "127.0.0.1"
    assert listed.secrets == {"DB_PASSWORD": 1}
    status, body = get(listed.address)
    assert (status, body["version"], body["instance"]) == (200, "2.0.0", instance.id.value)

    inspect = podman._podman("inspect", instance.id.value)
    (config,) = json.loads(inspect.stdout)
    assert config["HostConfig"]["ReadonlyRootfs"] is True
    assert config["HostConfig"]["Memory"] == 128 * 1024 * 1024
    assert config["HostConfig"]["NanoCpus"] == 500_000_000
    bindings = config["HostConfig"]["PortBindings"]["8000/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(instance.port)}]
    assert SECRET not in json.dumps(config["Config"]["Cmd"]) + json.dumps(
        config["Config"]["Labels"]
    )

    # Graceful: the in-flight request finishes during the SIGTERM drain.
    answers: list[int] = []
    request = threading.Thread(target=lambda: answers.append(get(listed.address)[0]))
    request.start()
    wait_connected(listed.port)
    time.sleep(0.3)  # then the handler picks the request up
    ended = podman.destroy(instance.id, drain_timeout=5)
    request.join(5)
    assert answers == [200]
    assert ended.graceful and ended.exit_code == 0
    assert podman.list() == []


def test_the_container_root_is_read_only(podman: PodmanProvider, tree: Path, layout: Path) -> None:
    (instance,) = podman.create(hello_spec(tree, image=ImageRef(layout, "v1")), 1)
    assert isinstance(podman.wait_ready([instance.id], timeout=30)[instance.id], Healthy)
    # conmon writes the log file a moment after the app prints: poll, don't sleep.
    deadline = time.monotonic() + 10
    while not any("listening on 0.0.0.0:8000" in x for x in podman.logs(instance.id)):
        assert time.monotonic() < deadline, podman.logs(instance.id)
        time.sleep(0.05)
    out = podman._podman(  # the provider's own podman invocation, same storage and conf
        "exec",
        instance.id.value,
        str(podman._interpreter),
        "-S",
        "-c",
        "import os\n"
        "for p in ('/app/x', '/deps/x', '/usr/x', '/tmp/x'):\n"
        "    try:\n        open(p, 'w').close(); print(p, 'written')\n"
        "    except OSError as e:\n        print(p, e.strerror)\n",
    ).stdout.splitlines()
    assert out == [
        "/app/x Read-only file system",
        "/deps/x Read-only file system",
        "/usr/x Read-only file system",
        "/tmp/x written",
    ]
    podman.destroy(instance.id, drain_timeout=1)


def test_a_spec_without_an_oci_layout_is_refused(podman: PodmanProvider, tree: Path) -> None:
    with pytest.raises(InvalidInput, match="OCI layout"):
        podman.create(hello_spec(tree), 1)
