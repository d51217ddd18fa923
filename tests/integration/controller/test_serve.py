"""The controller as a real process: socket mode, on-demand start, leadership after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "hello"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "hello"
    shutil.copytree(EXAMPLE, work)
    monkeypatch.chdir(work)
    return work


def _controller_pid(project: Path) -> int:
    info = json.loads((project / ".kiln" / "run" / "controller.json").read_text())
    return int(info["pid"])


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive")


def test_first_command_starts_a_local_controller_on_a_0600_socket(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        assert main(["controller", "status", "-o", "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["identity"] == {"name": "local-admin", "role": "admin"}
        assert [e["leader"] for e in out["controller"]["environments"]] == [True, True, True]
        sock = project / ".kiln" / "run" / "controller.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE((project / ".kiln").stat().st_mode) == 0o700
    finally:
        main(["down"])  # the controller, and the routers it started


def test_leadership_passes_on_when_the_controller_is_killed(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["controller", "status"]) == 0
    first = _controller_pid(project)
    second = subprocess.Popen(
        [sys.executable, "-m", "kiln", "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        os.kill(first, signal.SIGKILL)
        _wait_gone(first)
        capsys.readouterr()
        assert main(["controller", "status", "-o", "json"]) == 0  # starts a third one
        leaders = [
            e["leader"] for e in json.loads(capsys.readouterr().out)["controller"]["environments"]
        ]
        # The second controller (already running) took the leases the first one dropped,
        # so the freshly started third one leads nothing.
        assert leaders == [False, False, False]
    finally:
        main(["down"])  # the controller, and the routers it started
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=10)
