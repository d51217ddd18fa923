"""What the rollout outbox costs per transition, against recording without it.

A transition is a rollout state save plus its ledger events (one for most steps,
two when a rollout ends: ``rollout.step`` and ``deploy.complete``). Both ways
run in the same process on one ``state.db`` (WAL, ``synchronous=FULL``, the
ledger in the same file as the controller has it):

- without the outbox (the baseline, what the executor did before): ``save_rollout``,
  then one ``Recorder.record`` per event (a transaction each);
- with the outbox: ``save_rollout_with_events`` (state and rows, one
  transaction), ``append_once`` (the keyed events, one ledger transaction, one
  index lookup per key), ``clear_events`` (one transaction).

A third row is the read each tick adds when the outbox is empty (the flush's
``pending_events``) against ``rollout()``, the read every tick already makes.

    python -m benchmarks.bench_outbox [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from benchmarks.common import report
from kiln.adapters.store.desired import SqliteDesiredState
from kiln.adapters.store.sqlite import SqliteLedger
from kiln.core.digest import digest_bytes
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind
from kiln.core.release import Release
from kiln.core.rollout.planner import RolloutState
from kiln.services.outbox import EventOutbox

BATCH = 20  # transitions per timed sample: one costs a few fsyncs
QUICK_BATCH = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke-sized run")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 15
    batch = QUICK_BATCH if args.quick else BATCH
    with tempfile.TemporaryDirectory(prefix="kiln-bench-outbox-") as tmp:
        store = SqliteDesiredState(Path(tmp) / "state.db")
        ledger = SqliteLedger(Path(tmp) / "state.db")
        try:
            rows = _measure(store, ledger, repeat, batch)
            size = ledger.size()
        finally:
            store.close()
            ledger.close()
    report("outbox", rows, {"batch": batch, "repeat": repeat, "ledger_events_at_end": size})
    return 0


def _measure(
    store: SqliteDesiredState, ledger: SqliteLedger, repeat: int, batch: int
) -> list[dict[str, object]]:
    release = Release.of("prod", digest_bytes(b"v2"), digest_bytes(b"{}"))
    state = replace(
        RolloutState.begin("prod", release.id, "prod-v1", 1000.0), deployment="dep-bench"
    )
    outbox = EventOutbox(store=store, ledger=ledger)
    steps = iter(range(10**9))

    def drafts(count: int, step: int) -> list[EventDraft]:
        kinds = [EventKind.ROLLOUT_STEP, EventKind.DEPLOY_COMPLETE][:count]
        return [
            EventDraft(
                kind,
                "controller:bench",
                environment="prod",
                release=release.id,
                details={
                    "deployment": "dep-bench",
                    "step": step,
                    "note": "setWeight 50",
                    "weights": {"prod-v1": 50, release.id: 50},
                },
            )
            for kind in kinds
        ]

    def direct(count: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(batch):
                step = next(steps)
                store.save_rollout(replace(state, step=step))
                for d in drafts(count, step):
                    ledger.record(
                        d.kind,
                        actor=d.actor,
                        environment=d.environment,
                        release=d.release,
                        details=d.details,
                    )

        return run

    def through_outbox(count: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(batch):
                step = next(steps)
                outbox.save(replace(state, step=step), drafts(count, step), epoch=None)
                outbox.flush()

        return run

    def reads(read: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(batch):
                read()

        return run

    direct(1)()  # warm the file, the page cache and the ledger's tree
    through_outbox(1)()
    cases: list[tuple[str, str, str, Callable[[], None], Callable[[], None]]] = [
        (
            "transition, 1 event",
            "save + record",
            "outbox",
            direct(1),
            through_outbox(1),
        ),
        (
            "transition, 2 events",
            "save + 2 records",
            "outbox",
            direct(2),
            through_outbox(2),
        ),
        (
            "a tick's reads (outbox empty)",
            "rollout()",
            "pending_events() (added)",
            reads(lambda: store.rollout("prod")),
            reads(store.pending_events),
        ),
    ]
    rows: list[dict[str, object]] = []
    for case, base_name, name, baseline, measured in cases:
        # Alternate the two so drift on a loaded machine hits both alike.
        base_samples: list[float] = []
        samples: list[float] = []
        for _ in range(repeat):
            base_samples.append(_once(baseline))
            samples.append(_once(measured))
        base = statistics.median(base_samples) / batch
        with_outbox = statistics.median(samples) / batch
        rows.append(
            {
                "case": case,
                "baseline": base_name,
                "baseline µs": base * 1e6,
                "measured": name,
                "µs": with_outbox * 1e6,
                "ratio": with_outbox / base if base else float("nan"),
            }
        )
    return rows


def _once(func: Callable[[], None]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
