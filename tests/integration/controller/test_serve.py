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

from kiln.adapters.keys.tokens import read_local_token
from kiln.bootstrap.controller import START_TIMEOUT, Address, ControllerClient, free_port
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
    port = free_port()
    second = subprocess.Popen(
        [sys.executable, "-m", "kiln", "serve", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    follower = ControllerClient(
        Address(f"http://127.0.0.1:{port}"), read_local_token(project / ".kiln")
    )
    try:
        # The second one is up (on a loaded machine its start alone can take seconds)
        # and follows: the first holds every lease.
        assert _leaders_once_up(follower) == [False, False, False]
        os.kill(first, signal.SIGKILL)
        _wait_gone(first)
        # It takes the leases the first one dropped, by itself (it claims every second).
        _wait_leading(follower, [True, True, True])
        capsys.readouterr()
        assert main(["controller", "status", "-o", "json"]) == 0  # starts a third one
        leaders = [
            e["leader"] for e in json.loads(capsys.readouterr().out)["controller"]["environments"]
        ]
        # The second controller holds the leases, so the freshly started third one
        # leads nothing.
        assert leaders == [False, False, False]
    finally:
        follower.close()
        main(["down"])  # the controller, and the routers it started
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=10)


def _leaders(client: ControllerClient) -> list[bool]:
    return [bool(e["leader"]) for e in client.get("/v1/status")["environments"]]


def _leaders_once_up(client: ControllerClient) -> list[bool]:
    deadline = time.monotonic() + START_TIMEOUT
    while not client.alive():
        assert time.monotonic() < deadline, "the second controller did not start"
        time.sleep(0.05)
    return _leaders(client)


def _wait_leading(client: ControllerClient, expected: list[bool]) -> None:
    deadline = time.monotonic() + 30  # failover is within about CLAIM_INTERVAL (1 s)
    while (seen := _leaders(client)) != expected:
        assert time.monotonic() < deadline, f"leadership did not pass on: {seen}"
        time.sleep(0.05)
