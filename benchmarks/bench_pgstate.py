"""What moving desired state to PostgreSQL costs a rollout: SQLite vs PostgreSQL, side by side.

The write that matters is the rollout transition the executor persists before
it acts: ``save_rollout`` with the leader's epoch, checked against the current
term in the same transaction. Measured on each store as the controller opens
it, in the same run, alternating the two so a loaded machine's drift hits both:

- SQLite: ``state.db`` (WAL, ``synchronous=FULL``) in a temporary directory;
- PostgreSQL: a throwaway local cluster with the server's durable defaults
  (``fsync``, ``synchronous_commit`` on), over TCP on loopback; or ``--dsn``.

Also the reads a tick makes (``rollout()`` and ``term()``). The ratio is
PostgreSQL's median over SQLite's (the baseline).

    python -m benchmarks.bench_pgstate [--quick] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from benchmarks import pgcluster
from benchmarks.common import median_time, report
from kiln.adapters.store.desired import SqliteDesiredState
from kiln.adapters.store.pgdesired import PostgresDesiredState
from kiln.core.digest import digest_bytes
from kiln.core.release import Release
from kiln.core.rollout.planner import RolloutState

BATCH = 20  # operations per timed sample

Store = SqliteDesiredState | PostgresDesiredState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke-sized run")
    parser.add_argument("--dsn", help="an existing PostgreSQL database (default: a throwaway)")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 21
    with (
        tempfile.TemporaryDirectory(prefix="kiln-bench-pgstate-") as tmp,
        _postgres(args.dsn) as dsn,
    ):
        sqlite = SqliteDesiredState(Path(tmp) / "state.db")
        postgres = PostgresDesiredState(dsn, namespace="kiln-bench-pgstate")
        try:
            rows = _measure(sqlite, postgres, repeat)
        finally:
            sqlite.close()
            postgres.close()
    server = "--dsn" if args.dsn else "throwaway local cluster, durable defaults"
    report("pgstate", rows, {"batch": BATCH, "repeat": repeat, "postgres": server})
    return 0


@contextlib.contextmanager
def _postgres(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    with pgcluster.throwaway(fsync=True) as started:
        yield started


def _measure(sqlite: Store, postgres: Store, repeat: int) -> list[dict[str, object]]:
    release = Release.of("prod", digest_bytes(b"v1"), digest_bytes(b"{}"))
    state = RolloutState.begin("prod", release.id, None, 1000.0)
    epoch = max(sqlite.term("prod"), postgres.term("prod")) + 1
    for store in (sqlite, postgres):
        store.open_term("prod", epoch)
    steps = iter(range(10**9))

    def write(store: Store) -> Callable[[], None]:
        def run() -> None:
            for _ in range(BATCH):
                store.save_rollout(replace(state, step=next(steps)), epoch=epoch)

        return run

    def reads(store: Store) -> Callable[[], None]:
        def run() -> None:
            for _ in range(BATCH):
                store.rollout("prod")
                store.term("prod")

        return run

    rows: list[dict[str, object]] = []
    for case, measure in (
        ("rollout transition write, epoch-checked", write),
        ("a tick's reads: rollout() + term()", reads),
    ):
        measure(sqlite)()  # warm both
        measure(postgres)()
        lite: list[float] = []
        pg: list[float] = []
        for _ in range(repeat):
            lite.append(median_time(measure(sqlite), repeat=1)[0])
            pg.append(median_time(measure(postgres), repeat=1)[0])
        base = sorted(lite)[len(lite) // 2] / BATCH
        other = sorted(pg)[len(pg) // 2] / BATCH
        rows.append(
            {
                "case": case,
                "SQLite µs": base * 1e6,
                "PostgreSQL µs": other * 1e6,
                "ratio": other / base if base else float("nan"),
            }
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
