"""The hello example and systemd's socket-activation convention, without a sandbox.

The network-isolated sandbox passes the listening socket the same way; these
tests pin the app's side of the convention on its own: the socket given as
fd 3 is served when ``LISTEN_PID`` names the app, and ``PORT`` is bound
otherwise (the behaviour every unsandboxed deployment relies on).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import packaging
import pytest

from kiln.adapters.runtime.process import host_interpreter
from kiln.adapters.runtime.sandbox import activation, handover
from tests.integration.runtime.trees import HELLO

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def wait_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, "hello exited"
        try:
            get(port)
        except OSError:
            time.sleep(0.02)
            continue
        return
    raise AssertionError(f"nothing served on {port}")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


def start(command: list[str], env: dict[str, str], stdin: int) -> subprocess.Popen[bytes]:
    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(packaging.__file__).parent.parent),
        "KILN_INSTANCE_ID": "hello-dev-5ac7e7ed",
    }
    return subprocess.Popen(
        command, cwd=HELLO, env={**base, **env}, stdin=stdin, start_new_session=True
    )


def test_hello_serves_on_the_socket_it_is_given(listener: socket.socket) -> None:
    port = free_port()
    command = handover(activation([str(host_interpreter()), "-S", "app.py"]))
    process = start(command, {"LISTEN_FDS": "1", "PORT": str(port)}, listener.fileno())
    try:
        served = int(listener.getsockname()[1])
        listener.close()  # the app's copy is the only one now
        wait_serving(served, process)
        assert get(served)["instance"] == "hello-dev-5ac7e7ed"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()  # PORT unbound
    finally:
        process.terminate()
        assert process.wait(10) == 0  # SIGTERM is still a graceful stop


def test_hello_binds_port_when_the_socket_is_not_for_it(listener: socket.socket) -> None:
    port = free_port()
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid()), "PORT": str(port)}
    process = start([str(host_interpreter()), "-S", "app.py"], env, subprocess.DEVNULL)
    try:
        wait_serving(port, process)
        assert get(port)["instance"] == "hello-dev-5ac7e7ed"
    finally:
        process.terminate()
        assert process.wait(10) == 0
