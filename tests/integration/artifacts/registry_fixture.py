"""A throwaway Debian ``docker-registry`` on loopback, started and stopped by a fixture."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.artifacts.conftest import which


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def registry_url(tmp_path: Path) -> Iterator[str]:
    yield from _serve(tmp_path / "registry", auth="")


USER, PASSWORD = "kiln", "test-password-not-secret"


@pytest.fixture
def basic_auth_registry_url(tmp_path: Path) -> Iterator[str]:
    """The same registry behind htpasswd (bcrypt) Basic authentication."""
    root = tmp_path / "registry-auth"
    root.mkdir()
    line = subprocess.run(
        [which("htpasswd"), "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    ).stdout
    (root / "htpasswd").write_text(line)
    auth = f"auth: {{htpasswd: {{realm: kiln-test, path: {root / 'htpasswd'}}}}}\n"
    yield from _serve(root, auth=auth)


def _serve(root: Path, *, auth: str) -> Iterator[str]:
    binary = which("docker-registry")
    port = free_port()
    root.mkdir(exist_ok=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n" + auth
    )
    log = (root / "log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/v2/", timeout=1).status_code in {200, 401}:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"docker-registry did not start: {(root / 'log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
