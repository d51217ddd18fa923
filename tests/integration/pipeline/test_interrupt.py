"""Ctrl-C (SIGINT) or SIGTERM in the middle of `kiln test` leaves no instance and no port.

The real CLI runs in a child process; a slow integration test keeps its live
instance up; the signal arrives while it runs. Afterwards the test provider
lists nothing and the instance's port is free again.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.bootstrap.pipeline import provider_for_tests
from tests.integration.pipeline.conftest import Project

pytestmark = pytest.mark.integration

SLOW = (
    "  - name: slow\n    kind: integration\n"
    '    command: ["python", "-c", "import time; time.sleep(60)"]\n'
)


def _port_free(port: int) -> bool:
    """Nobody listens there: a bind succeeds (SO_REUSEADDR skips TIME_WAIT leftovers)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _interrupt(
    project: Project, args: list[str], signum: int, busy: Callable[[list[int]], bool]
) -> list[int]:
    """Run ``kiln ARGS`` in a child, signal it once ``busy(ports)`` holds for the test
    instances' ports, and check it left no instance and no port; return the ports."""
    provider = provider_for_tests(project.root / ".kiln")
    child = subprocess.Popen(
        [sys.executable, "-m", "kiln", "--no-color", *args],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        ports: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (ports and busy(ports)):
            ports = [i.port for i in provider.list() if i.port]
            time.sleep(0.1)
        assert ports and busy(ports), f"kiln {args[0]} never got busy with an instance"
        child.send_signal(signum)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    assert child.returncode != 0
    assert b"Traceback" not in out
    assert provider.list() == []
    assert all(_port_free(p) for p in ports)
    return ports


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_no_instance_and_no_port(project: Project, signum: int) -> None:
    project.edit_spec("tests:\n", "tests:\n" + SLOW)
    digest = project.build()

    def started(ports: list[int]) -> bool:
        time.sleep(0.5)  # let the test command start too
        return True

    _interrupt(project, ["test", "--artifact", digest], signum, started)
    scratch = project.root / ".kiln" / "testing" / "scratch"
    assert not scratch.exists() or list(scratch.iterdir()) == []


def _hey_processes(port: int) -> list[int]:
    """Load generators still aimed at ``port`` (read from /proc: no extra dependency)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        target = f":{port}".encode()
        if argv and argv[0].endswith(b"hey") and any(a.rstrip(b"/").endswith(target) for a in argv):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(shutil.which("hey") is None, reason="the load generator hey is missing")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_benchmark_leaves_no_instance_no_port_and_no_load(
    project: Project, signum: int
) -> None:
    project.edit_spec(
        "environments:\n", "policies:\n  performance: {duration: 30s}\nenvironments:\n"
    )
    project.edit_spec("  - name: dev\n", "  - name: dev\n    gates: [signed, performance]\n")
    digest = project.build()
    ports = _interrupt(
        project,
        ["pipeline", "promote", "dev", digest],
        signum,
        lambda ports: bool(_hey_processes(ports[0])),
    )
    assert _hey_processes(ports[0]) == []
