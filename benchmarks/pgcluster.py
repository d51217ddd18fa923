"""A throwaway PostgreSQL cluster on this machine, for benchmarks and tests.

``initdb -A trust`` into a temporary directory owned by the ``postgres`` user
(initdb refuses root), then ``pg_ctl`` listening on 127.0.0.1 at a free port.
Stopped (``-m immediate``) and removed on exit, even after a failure. Tests
turn ``fsync`` off (speed, nothing to keep); benchmarks keep the server's
durable defaults so a commit costs what it costs in production.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

INITDB = shutil.which("initdb")
PG_CTL = shutil.which("pg_ctl")


def available() -> bool:
    return INITDB is not None and PG_CTL is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextmanager
def throwaway(*, fsync: bool) -> Iterator[str]:
    """Start a cluster; yield the DSN of its ``postgres`` database."""
    if INITDB is None or PG_CTL is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="kiln-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    port = free_port()
    started = False
    try:
        initdb = [INITDB, "-D", str(data), "-A", "trust", "-U", "postgres"]
        subprocess.run(
            _as_postgres([*initdb, *([] if fsync else ["--no-sync"])]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets}"
        if not fsync:
            options += " -c fsync=off"
        start = [PG_CTL, "-D", str(data), "-w", "-t", "60", "-l", str(root / "log")]
        subprocess.run(
            _as_postgres([*start, "-o", options, "start"]),
            check=True,
            capture_output=True,
            timeout=90,
        )
        started = True
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        if started:
            subprocess.run(
                _as_postgres([PG_CTL, "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
