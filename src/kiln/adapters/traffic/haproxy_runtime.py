"""HAProxy's runtime API and process, at the edge: one command per connection on
the admin socket (``RuntimeAPI``), ``show stat`` CSV parsed into typed rows
(``parse_stat``), and ``HAProxyProcess`` to run ``haproxy -db`` in tests and
benchmarks. ``kiln.adapters.traffic.haproxy`` maps route tables onto these.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kiln.adapters.traffic.haproxy_metrics import (
    EXEC_WITH_FIFO,
    LOG_FD,
    PIPE_SIZE,
    make_fifo,
)
from kiln.errors import ConfigError, InvalidInput, Permanent, Temporary


@dataclass(frozen=True, slots=True)
class ServerStat:
    """One server row of ``show stat``, typed."""

    backend: str
    name: str
    status: str
    weight: int
    current_sessions: int
    total_sessions: int
    responses: tuple[int, int, int, int, int]  # 1xx..5xx
    connect_errors: int
    response_errors: int
    address: str


def parse_stat(text: str) -> list[ServerStat]:
    """Parse ``show stat`` CSV into server rows (frontends and backends skipped)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise Permanent(f"unexpected `show stat` answer: {text[:120]!r}")
    reader = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    rows: list[ServerStat] = []
    try:
        for row in reader:
            if row.get("svname") in {"FRONTEND", "BACKEND", None} or not row.get("pxname"):
                continue
            rows.append(
                ServerStat(
                    backend=row["pxname"],
                    name=row["svname"],
                    status=row["status"],
                    weight=_int(row["weight"]),
                    current_sessions=_int(row["scur"]),
                    total_sessions=_int(row["stot"]),
                    responses=(
                        _int(row["hrsp_1xx"]),
                        _int(row["hrsp_2xx"]),
                        _int(row["hrsp_3xx"]),
                        _int(row["hrsp_4xx"]),
                        _int(row["hrsp_5xx"]),
                    ),
                    connect_errors=_int(row["econ"]),
                    response_errors=_int(row["eresp"]),
                    address=row.get("addr") or "",
                )
            )
    except (KeyError, ValueError) as exc:
        raise Permanent(f"`show stat` has an unexpected shape: {exc}") from exc
    return rows


def parse_info(text: str) -> dict[str, str]:
    """``show info`` (``Name: value`` lines) as a mapping."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    if "Pid" not in out:
        raise Permanent(f"unexpected `show info` answer: {text[:120]!r}")
    return out


def _int(value: str | None) -> int:
    return int(value) if value else 0


class RuntimeAPI:
    """One command per connection on HAProxy's admin socket."""

    def __init__(self, socket_path: Path, *, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def command(self, line: str) -> str:
        if "\n" in line or ";" in line:
            raise InvalidInput(f"refusing to send a multi-command line: {line!r}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.socket_path))
                sock.sendall(line.encode() + b"\n")
                chunks: list[bytes] = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except OSError as exc:
            raise Temporary(
                f"HAProxy's runtime API at {self.socket_path} does not answer: {exc}",
                delay=0.5,
                hint="is haproxy running with `stats socket ... level admin`?",
            ) from exc
        return b"".join(chunks).decode(errors="replace")

    def expect(self, line: str, *accepted: str) -> str:
        """Run a command whose success answer is empty or one of ``accepted``."""
        answer = self.command(line).strip()
        if answer and not any(answer.startswith(a) for a in accepted):
            raise Permanent(f"HAProxy refused `{line}`: {answer}")
        return answer


def with_log_fifo(fifo: Path, command: list[str], *, size: int = PIPE_SIZE) -> list[str]:
    """``command`` run with the request-log pipe (``size`` bytes) on descriptor
    ``LOG_FD``, under the same PID."""
    make_fifo(fifo)
    return [sys.executable, "-c", EXEC_WITH_FIFO, str(fifo), str(LOG_FD), str(size), *command]


class HAProxyProcess:
    """Runs ``haproxy -db -f CONFIG`` and waits for its runtime API."""

    def __init__(
        self,
        *,
        config: Path,
        stats_socket: Path,
        log_fifo: Path | None = None,
        pipe_size: int = PIPE_SIZE,
    ) -> None:
        self.config = config
        self.stats_socket = stats_socket
        self.log_fifo = log_fifo  # the request-log pipe, handed over as ``log fd@9``
        self.pipe_size = pipe_size
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 10.0) -> RuntimeAPI:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise ConfigError("haproxy is not installed", hint="apt-get install haproxy")
        command = [binary, "-db", "-f", str(self.config)]
        if self.log_fifo is not None:
            command = with_log_fifo(self.log_fifo, command, size=self.pipe_size)
        self.proc = subprocess.Popen(  # noqa: S603 - fixed binary, our own config path
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        api = RuntimeAPI(self.stats_socket)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise Permanent(f"haproxy exited with {self.proc.returncode} at start")
            try:
                if "Name: HAProxy" in api.command("show info"):
                    return api
            except Temporary:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise Temporary("haproxy did not open its runtime API in time")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.stats_socket.unlink()
