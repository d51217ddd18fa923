"""Ctrl-C (SIGINT) or SIGTERM in the middle of `kiln test` leaves no instance and no port.

The real CLI runs in a child process; a slow integration test keeps its live
instance up; the signal arrives while it runs. Afterwards the test provider
lists nothing and the instance's port is free again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_no_instance_and_no_port(project: Project, signum: int) -> None:
    project.edit_spec("tests:\n", "tests:\n" + SLOW)
    digest = project.build()
    state = project.root / ".kiln"
    provider = provider_for_tests(state)
    child = subprocess.Popen(
        [sys.executable, "-m", "kiln", "--no-color", "test", "--artifact", digest],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        ports: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ports:
            live = [i for i in provider.list() if i.port]
            ports = [i.port for i in live]
            time.sleep(0.1)
        assert ports, "the slow test's instance never came up"
        time.sleep(0.5)  # let the test command start too
        child.send_signal(signum)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    assert b"Traceback" not in out
    assert provider.list() == []
    assert all(_port_free(p) for p in ports)
    scratch = Path(state / "testing" / "scratch")
    assert not scratch.exists() or list(scratch.iterdir()) == []
