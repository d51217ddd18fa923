"""Build the inputs a provider receives, without the artifacts builder.

``hello_tree`` lays out the agreed unpacked artifact (``app/``, ``deps/``) from
examples/hello and makes it read-only. ``oci_layout`` packs such a tree into a
minimal OCI image layout (one uncompressed layer, image-spec v1.1 media types)
so the podman provider can run it with ``oci:DIR:TAG``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import packaging

REPO = Path(__file__).resolve().parents[3]
HELLO = REPO / "examples" / "hello"
CMD = ["python", "app.py"]

# An app (beside hello.py) that never stops on SIGTERM: drains must end in SIGKILL.
STUBBORN_APP = """
import signal, runpy
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # never stops on its own
import hello
hello.signal.signal = lambda *args: None  # and hello may not re-arm SIGTERM
hello.main()
"""


def hello_tree(dest: Path, *, app_source: Path | None = None) -> Path:
    """A read-only tree ROOT with ``app/app.py`` and ``deps/packaging``."""
    (dest / "app").mkdir(parents=True)
    shutil.copy2(app_source or HELLO / "app.py", dest / "app" / "app.py")
    shutil.copytree(
        Path(packaging.__file__).parent,
        dest / "deps" / "packaging",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    make_read_only(dest)
    return dest


def make_read_only(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        mode = stat.S_IMODE(path.lstat().st_mode)
        path.chmod(mode & ~0o222)
    root.chmod(stat.S_IMODE(root.stat().st_mode) & ~0o222)


def make_writable(root: Path) -> None:
    """Undo ``make_read_only`` so pytest can delete the tree."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.split(":")[1]).write_bytes(data)
    return digest, len(data)


def oci_layout(tree: Path, dest: Path, *, tag: str = "latest") -> Path:
    """Pack ``tree`` (app/ and deps/ at the image root) into an OCI layout at ``dest``."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(tree.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(tree)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o755 if info.isdir() else 0o644
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    layer = buffer.getvalue()
    layer_digest, layer_size = _blob(blobs, layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": CMD,
            "WorkingDir": "/app",
            "Env": ["PYTHONPATH=/deps"],
            "ExposedPorts": {"8000/tcp": {}},
            "Labels": {"dev.kiln.service": "hello"},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_digest, config_size = _blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }
    manifest_digest, manifest_size = _blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    os.sync()
    return dest


def wait_connected(port: int, timeout: float = 5.0) -> None:
    """Wait until some local socket has an established connection *to* ``port``.

    Tests of graceful drain start a slow request in a thread and must not send
    SIGTERM before the request has reached the app; on a loaded machine a fixed
    sleep is not enough. /proc/net/tcp lists the client's socket with the
    server's port as its remote address (state 01 = ESTABLISHED).
    """
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].split(":")[1], 16) == port:
                return
        time.sleep(0.01)
    raise AssertionError(f"no connection to port {port} within {timeout} s")
