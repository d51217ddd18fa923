"""Fixtures shared by integration tests of several areas: a real PostgreSQL 15.

The cluster is a throwaway (``benchmarks.pgcluster``: ``initdb -A trust`` in a
temporary directory owned by the ``postgres`` user, then ``pg_ctl`` listening
on 127.0.0.1 at a free port), with ``fsync=off``. One cluster serves
the whole session (the ledger's tests, the controller's leadership tests); each
test gets its own database. It is stopped and removed even when a test fails.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from benchmarks import pgcluster


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    if not pgcluster.available():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with pgcluster.throwaway(fsync=False) as dsn:
        yield dsn


@pytest.fixture
def dsn(postgres_dsn: str) -> Iterator[str]:
    """A fresh database per test, dropped afterwards."""
    import psycopg

    name = f"kiln_{os.getpid()}_{threading.get_ident() % 100000}_{pgcluster.free_port()}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_dsn.replace("dbname=postgres", f"dbname={name}")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
