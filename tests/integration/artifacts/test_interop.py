"""Other tools read what kiln writes: skopeo inspects it, podman runs it.

There is no base image here (no internet). One image carries Debian's static
busybox in its application layer; the other is the example service itself,
built with its pinned dependencies, which podman runs with the host's Python
mounted read-only (kiln images carry no interpreter: the runtime provides it,
as ``kiln.adapters.runtime.podman`` does) and which answers over loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiln.adapters.artifacts.pip import PipInstaller
from kiln.adapters.runtime.podman import CONTAINERS_CONF
from kiln.services.artifacts import export_layout
from kiln.services.build import BuildResult, run_build
from kiln.services.spec import read_spec
from tests.integration.artifacts.conftest import BuilderFactory, example_repo, make_repo, which

BUSYBOX = Path("/bin/busybox")


@pytest.fixture
def busybox_image(tmp_path: Path, make_builder: BuilderFactory) -> tuple[Path, BuildResult]:
    if not BUSYBOX.is_file():
        pytest.fail("busybox-static is not installed; .ci/run installs it")
    repo = make_repo(
        tmp_path / "box",
        {
            "kiln.yaml": 'service: box\nbuild:\n  command: ["/app/bin/busybox", "pwd"]\n'
            "  port: 8080\n",
            "bin/busybox": BUSYBOX.read_bytes(),
            ".gitignore": ".kiln/\n",
        },
        executable=("bin/busybox",),
    )
    builder = make_builder(tmp_path / "state")
    result = run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    layout = export_layout(builder.store, result.digest, tmp_path / "layout")
    return layout, result


Podman = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    """podman on storage of this test's own: root, runroot and libpod's run state
    (the provider's choices, kiln.adapters.runtime.podman), reset afterwards."""
    run = Path(tempfile.mkdtemp(prefix="kiln-podrun-"))  # podman wants a runroot < 50 chars
    conf = tmp_path / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    base = [which("podman"), "--root", str(tmp_path / "podman-root"), "--runroot", str(run)]
    base += ["--tmpdir", str(run / "libpod"), "--storage-driver", "vfs"]

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args],
            env={**os.environ, "CONTAINERS_CONF": str(conf)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        yield podman
    finally:
        podman("system", "reset", "--force")
        shutil.rmtree(tmp_path / "podman-root", ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)


def test_skopeo_inspects_the_layout(busybox_image: tuple[Path, BuildResult]) -> None:
    layout, result = busybox_image
    assert result.tag is not None
    done = subprocess.run(
        [which("skopeo"), "inspect", f"oci:{layout}:{result.tag.name}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    info = json.loads(done.stdout)
    assert info["Digest"] == result.digest
    assert info["Labels"]["dev.kiln.service"] == "box"
    assert info["Layers"] == [layer.digest for layer in result.layers]
    raw = subprocess.run(
        [which("skopeo"), "inspect", "--config", f"oci:{layout}:{result.tag.name}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(raw.stdout)["config"]["ExposedPorts"] == {"8080/tcp": {}}


def test_skopeo_reads_the_local_store_itself(
    tmp_path: Path, busybox_image: tuple[Path, BuildResult]
) -> None:
    _layout, result = busybox_image
    done = subprocess.run(
        [which("skopeo"), "inspect", f"oci:{tmp_path / 'state' / 'store'}:{result.tag}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout)["Digest"] == result.digest


def test_a_gzip_export_is_deterministic_and_runs(
    tmp_path: Path,
    make_builder: BuilderFactory,
    busybox_image: tuple[Path, BuildResult],
    podman: Podman,
) -> None:
    layout, result = busybox_image
    store = make_builder(tmp_path / "state").store
    one = export_layout(store, result.digest, tmp_path / "gz1", gzip_layers=True)
    two = export_layout(store, result.digest, tmp_path / "gz2", gzip_layers=True)
    index = json.loads((one / "index.json").read_text())
    assert index == json.loads((two / "index.json").read_text())
    gz_digest = index["manifests"][0]["digest"]
    assert gz_digest != result.digest
    manifest = json.loads((one / "blobs" / "sha256" / gz_digest[7:]).read_text())
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }
    assert result.tag is not None
    done = podman("run", "--rm", "--network", "none", f"oci:{one}:{result.tag.name}")
    assert done.stdout.strip() == "/app", done.stderr
    assert layout.exists()


def test_podman_runs_the_layout(busybox_image: tuple[Path, BuildResult], podman: Podman) -> None:
    layout, result = busybox_image
    assert result.tag is not None
    image = f"oci:{layout}:{result.tag.name}"
    echo = podman("run", "--rm", "--network", "none", image, "/app/bin/busybox", "echo", "ok")
    assert echo.returncode == 0, echo.stderr
    assert echo.stdout.strip() == "ok"
    default = podman("run", "--rm", "--network", "none", image)
    assert default.stdout.strip() == "/app", default.stderr  # Cmd and WorkingDir
    env = podman("run", "--rm", "--network", "none", image, "/app/bin/busybox", "env")
    assert "PYTHONPATH=/deps" in env.stdout.splitlines()


def test_podman_runs_the_example_app_and_it_answers_over_loopback(
    tmp_path: Path, make_builder: BuilderFactory, podman: Podman
) -> None:
    repo = example_repo(tmp_path / "hello")
    builder = make_builder(tmp_path / "state", installer=PipInstaller())
    result = run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    assert result.tag is not None
    layout = export_layout(builder.store, result.digest, tmp_path / "layout")
    image = f"oci:{layout}:{result.tag.name}"
    with socket.socket() as probe:  # a free loopback port for the published one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prefix = sys.base_prefix  # the interpreter the dependency layer was installed for
    interpreter = f"{prefix}/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    mounts = ["--volume", "/usr:/usr:ro", "--volume", f"{prefix}:{prefix}:ro"]
    for top in ("/lib", "/lib64"):
        if Path(top).exists():
            mounts += ["--volume", f"{os.path.realpath(top)}:{top}:ro"]
    name = f"kiln-interop-{os.getpid()}"
    try:
        started = podman(
            "run",
            "--detach",
            "--name",
            name,
            "--read-only",
            "--publish",
            f"127.0.0.1:{port}:8000",
            "--env",
            "PORT=8000",
            "--env",
            "HOST=0.0.0.0",
            "--env",
            "APP_VERSION=7.7.7",
            *mounts,
            image,
            interpreter,  # the image's Cmd is ["python", "app.py"]; python is the runtime's
            "app.py",
        )
        assert started.returncode == 0, started.stderr
        body = _fetch(f"http://127.0.0.1:{port}/", deadline=time.monotonic() + 60)
        assert "7.7.7" in body  # packaging (from /deps) parsed it
        health = _fetch(f"http://127.0.0.1:{port}/healthz", deadline=time.monotonic() + 10)
        assert health
    finally:
        logs = podman("logs", name)
        podman("rm", "--force", "--time", "2", name)
        print(logs.stdout, logs.stderr)  # shown by pytest only when the test fails


def _fetch(url: str, *, deadline: float) -> str:
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                return str(response.read().decode())
        except OSError as exc:  # not listening yet, or the container is still starting
            last = str(exc)
            time.sleep(0.2)
    pytest.fail(f"{url} never answered: {last}")
