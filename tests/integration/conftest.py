"""Fixtures shared by integration tests of several areas: a real PostgreSQL 15.

The cluster is a throwaway: ``initdb -A trust --no-sync`` in a temporary
directory owned by the ``postgres`` user (initdb refuses root), then ``pg_ctl``
listening on 127.0.0.1 at a free port with ``fsync=off``. One cluster serves
the whole session (the ledger's tests, the controller's leadership tests); each
test gets its own database. It is stopped and removed even when a test fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

INITDB = shutil.which("initdb")
PG_CTL = shutil.which("pg_ctl")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    if INITDB is None or PG_CTL is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = Path(tempfile.mkdtemp(prefix="kiln-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
    port = _free_port()
    started = False
    try:
        subprocess.run(
            _as_postgres([INITDB, "-D", str(data), "-A", "trust", "--no-sync", "-U", "postgres"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
        subprocess.run(
            _as_postgres(
                [
                    PG_CTL,
                    "-D",
                    str(data),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(root / "log"),
                    "-o",
                    options,
                    "start",
                ]
            ),
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


@pytest.fixture
def dsn(postgres_dsn: str) -> Iterator[str]:
    """A fresh database per test, dropped afterwards."""
    import psycopg

    name = f"kiln_{os.getpid()}_{threading.get_ident() % 100000}_{_free_port()}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_dsn.replace("dbname=postgres", f"dbname={name}")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
