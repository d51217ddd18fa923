"""Real components for router tests: tiny backends, the `kiln router` process,
HAProxy, the `hey` load generator and a route-table pusher process.

Every process is started with ``sys.executable`` (not the pyenv shim) so the PID
held is the server, and every fixture kills what it started, even on failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BACKEND = HERE / "backend.py"
PUSHER = HERE / "pusher.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {port}")


class Processes:
    """Starts processes and guarantees they are gone at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kw: object) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            args, start_new_session=True, **kw
        )
        self.started.append(proc)
        return proc

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.started:
            if proc.poll() is None:
                proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def procs() -> Iterator[Processes]:
    group = Processes()
    try:
        yield group
    finally:
        group.stop_all()


@dataclass
class BackendProc:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_backends(procs: Processes, names: list[str], *, delay_ms: int = 0) -> list[BackendProc]:
    """Backends answering ``200 NAME``; after ``delay_ms`` on ``/`` when given."""
    out = []
    for name in names:
        port = free_port()
        proc = procs.start(
            [sys.executable, str(BACKEND), str(port), name, str(delay_ms)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out.append(BackendProc(name, port, proc))
    for backend in out:
        wait_port(backend.port)
    return out


@dataclass
class RouterProc:
    port: int
    admin: Path
    state: Path
    proc: subprocess.Popen[bytes]
    ready: dict[str, object]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_router(
    procs: Processes,
    workdir: Path,
    port: int = 0,
    *,
    state: Path | None = None,
    extra: tuple[str, ...] = (),
) -> RouterProc:
    admin = workdir / "router.sock"
    state = state or workdir / "routes.json"
    proc = procs.start(
        [
            sys.executable,
            "-m",
            "kiln",
            "router",
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-socket",
            str(admin),
            "--state-file",
            str(state),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"kiln router did not start: {err}")
    ready = json.loads(line)
    actual = int(str(ready["listen"]).rsplit(":", 1)[1])
    return RouterProc(actual, admin, state, proc, ready)


@dataclass
class LoadResult:
    ok: int
    non_2xx: int
    errors: int
    rps: float
    p50: float | None
    p99: float | None
    raw: str

    @property
    def failed(self) -> int:
        return self.non_2xx + self.errors


def parse_hey(text: str) -> LoadResult:
    ok = non_2xx = errors = 0
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Status code distribution"):
            section = "status"
            continue
        if stripped.startswith("Error distribution"):
            section = "errors"
            continue
        match = re.match(r"\[(\d+)\]\s+(\d+)", stripped)
        if match and section == "status":
            code, count = int(match.group(1)), int(match.group(2))
            if 200 <= code < 300:
                ok += count
            else:
                non_2xx += count
        elif match and section == "errors":
            errors += int(match.group(1))
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", text)

    def pct(p: str) -> float | None:
        found = re.search(rf"\s{p}% in ([\d.]+) secs", text)
        return float(found.group(1)) if found else None

    return LoadResult(
        ok,
        non_2xx,
        errors,
        float(rps_match.group(1)) if rps_match else 0.0,
        pct("50"),
        pct("99"),
        text,
    )


def hey_args(
    url: str,
    *,
    seconds: float,
    workers: int = 8,
    qps_per_worker: float = 50,
    keepalive: bool = True,
    headers: tuple[str, ...] = (),
) -> list[str]:
    hey = shutil.which("hey")
    if hey is None:
        raise RuntimeError("hey is not installed (apt-get install hey; .ci/run installs it)")
    args = [hey, "-z", f"{seconds}s", "-c", str(workers), "-q", str(qps_per_worker), "-t", "10"]
    if not keepalive:
        args.append("-disable-keepalive")
    for header in headers:
        args += ["-H", header]
    return [*args, url]


def start_load(procs: Processes, url: str, **kw: object) -> subprocess.Popen[bytes]:
    return procs.start(hey_args(url, **kw), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # type: ignore[arg-type]


def finish_load(proc: subprocess.Popen[bytes], timeout: float = 60) -> LoadResult:
    out, _ = proc.communicate(timeout=timeout)
    return parse_hey(out.decode(errors="replace"))


def start_pusher(
    procs: Processes, kind: str, target: str, spec: dict[str, object]
) -> subprocess.Popen[bytes]:
    """A separate process pushing a new route table every 100 ms (stands in for the
    controller until it exists); prints one line per applied generation."""
    return procs.start(
        [sys.executable, str(PUSHER), kind, target, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
