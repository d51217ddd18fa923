"""Other tools read what kiln writes: skopeo inspects it, podman runs it.

There is no base image here (no internet), so the image that podman runs
carries Debian's static busybox in its application layer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from kiln.services.artifacts import export_layout
from kiln.services.build import BuildResult, run_build
from kiln.services.spec import read_spec
from tests.integration.artifacts.conftest import BuilderFactory, make_repo, which

BUSYBOX = Path("/bin/busybox")
CONTAINERS_CONF = """\
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
"""


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


def podman(tmp_path: Path, run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return subprocess.run(
        [
            which("podman"),
            "--root",
            str(tmp_path / "podman-root"),
            "--runroot",
            str(run),
            "--storage-driver",
            "vfs",
            *args,
        ],
        env={**os.environ, "CONTAINERS_CONF": str(conf)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
    tmp_path: Path, make_builder: BuilderFactory, busybox_image: tuple[Path, BuildResult]
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
    run = Path(tempfile.mkdtemp(prefix="kiln-podrun-"))
    try:
        done = podman(
            tmp_path, run, "run", "--rm", "--network", "none", f"oci:{one}:{result.tag.name}"
        )
        assert done.stdout.strip() == "/app", done.stderr
    finally:
        podman(tmp_path, run, "system", "reset", "--force")
        shutil.rmtree(tmp_path / "podman-root", ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
    assert layout.exists()


def test_podman_runs_the_layout(tmp_path: Path, busybox_image: tuple[Path, BuildResult]) -> None:
    layout, result = busybox_image
    assert result.tag is not None
    image = f"oci:{layout}:{result.tag.name}"
    run = Path(tempfile.mkdtemp(prefix="kiln-podrun-"))  # podman wants a runroot < 50 chars
    try:
        echo = podman(
            tmp_path,
            run,
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "/app/bin/busybox",
            "echo",
            "ok",
        )
        assert echo.returncode == 0, echo.stderr
        assert echo.stdout.strip() == "ok"
        default = podman(tmp_path, run, "run", "--rm", "--network", "none", image)
        assert default.stdout.strip() == "/app", default.stderr  # Cmd and WorkingDir
        env = podman(
            tmp_path, run, "run", "--rm", "--network", "none", image, "/app/bin/busybox", "env"
        )
        assert "PYTHONPATH=/deps" in env.stdout.splitlines()
    finally:
        podman(tmp_path, run, "system", "reset", "--force")
        shutil.rmtree(tmp_path / "podman-root", ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
