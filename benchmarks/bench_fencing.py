"""What fencing costs the leader: a fenced write and the term check, side by side.

Every desired-state write of a leader carries its epoch, checked against the
current term inside the write's own transaction; each tick and each outside
action first re-reads the term. Baselines in the same run, on the same
``state.db`` (WAL, ``synchronous=FULL`` as the controller opens it):

- ``save_rollout`` without an epoch (what every write cost before fencing)
  against the same write with one;
- ``rollout()``, the read every tick already makes, against ``term()``, the
  read the term check adds.

    python -m benchmarks.bench_fencing [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from benchmarks.common import median_time, report
from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.digest import digest_bytes
from kiln.core.release import Release
from kiln.core.rollout.planner import RolloutState

BATCH = 50  # operations per timed sample: one write is a few hundred microseconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke-sized run")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 15
    with tempfile.TemporaryDirectory(prefix="kiln-bench-fencing-") as tmp:
        store = SqliteDesiredState(Path(tmp) / "state.db")
        try:
            rows = _measure(store, repeat)
        finally:
            store.close()
    report("fencing", rows, {"batch": BATCH, "repeat": repeat})
    return 0


def _measure(store: SqliteDesiredState, repeat: int) -> list[dict[str, object]]:
    release = Release.of("prod", digest_bytes(b"v1"), digest_bytes(b"{}"))
    state = RolloutState.begin("prod", release.id, None, 1000.0)
    store.open_term("prod", 1)
    steps = iter(range(10**9))

    def writes(epoch: int | None) -> None:
        for _ in range(BATCH):
            store.save_rollout(replace(state, step=next(steps)), epoch=epoch)

    def reads(read: Callable[[str], object]) -> None:
        for _ in range(BATCH):
            read("prod")

    writes(None)  # warm the file and the page cache
    rows: list[dict[str, object]] = []
    for case, names, baseline, measured in (
        (
            "a rollout write",
            ("save_rollout, no epoch", "save_rollout, epoch checked"),
            lambda: writes(None),
            lambda: writes(1),
        ),
        (
            "a tick's reads",
            ("rollout() (every tick)", "term() (added)"),
            lambda: reads(store.rollout),
            lambda: reads(store.term),
        ),
    ):
        # Alternate the two so drift on a loaded machine hits both alike.
        base_samples: list[float] = []
        fenced_samples: list[float] = []
        for _ in range(repeat):
            base_samples.append(median_time(baseline, repeat=1)[0])
            fenced_samples.append(median_time(measured, repeat=1)[0])
        base = sorted(base_samples)[len(base_samples) // 2] / BATCH
        fenced = sorted(fenced_samples)[len(fenced_samples) // 2] / BATCH
        rows.append(
            {
                "case": case,
                "baseline": names[0],
                "baseline µs": base * 1e6,
                "with fencing": names[1],
                "µs": fenced * 1e6,
                "ratio": fenced / base if base else float("nan"),
            }
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
