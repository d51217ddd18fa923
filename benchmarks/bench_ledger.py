"""The ledger's speed, each figure beside SHA-256 alone over the same bytes.

SHA-256 over the leaf bytes is the physical limit of an RFC 6962 log: every
event must be hashed once as a leaf and about once more as part of a node. The
ratio column says how far kiln is from it.

1. append: durable commits (WAL, synchronous=FULL) to a real SQLite file, in
   batches of 1000 (target >= 20k events/s) and one event per commit.
2. verify: full verification of the log (every seq, leaf hash, stored hash, the
   tree, the stored head), 1M events (target <= 5 s); ``--quick`` uses 50k.
3. proofs: inclusion and consistency proof size and time as the log grows,
   generated from the stored perfect nodes (O(log n) rows) and verified.

Run: ``python -m benchmarks.bench_ledger [--quick]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import median_time, report
from kiln.adapters.store.sqlite import SqliteLedger
from kiln.core.ledger import merkle
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.verify import Verified, verify_log

BATCH = 1000


def _drafts(count: int) -> list[EventDraft]:
    """Events shaped like a canary step: subject, config link, weights (~400 bytes)."""
    return [
        EventDraft(
            EventKind.ROLLOUT_STEP,
            "kiln-controller",
            artifact="sha256:" + f"{i % 97:064x}",
            environment=("dev", "staging", "prod")[i % 3],
            release=f"r-{i // 50:06d}",
            links={"config": "sha256:" + f"{i % 13:064x}"},
            details={"deployment": f"d-{i // 50}", "step": i % 50, "weights": {"a": 90, "b": 10}},
        )
        for i in range(count)
    ]


def _sha_only(leaves: Sequence[bytes]) -> float:
    """Seconds for SHA-256 of every leaf and of one node per leaf: the floor."""
    sha = hashlib.sha256
    pad = b"\x01" + b"\x00" * 64
    start = time.perf_counter()
    for leaf in leaves:
        sha(b"\x00" + leaf).digest()
        sha(pad).digest()
    return time.perf_counter() - start


def bench_append(tmp: Path, count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    drafts = _drafts(count)
    store = SqliteLedger(tmp / "append.db")
    start = time.perf_counter()
    for i in range(0, count, BATCH):
        store.append(drafts[i : i + BATCH])
    batched = time.perf_counter() - start
    leaves = [entry.leaf for entry in store.entries()]
    store.close()
    floor = _sha_only(leaves)
    rows.append(
        {
            "case": f"append, batches of {BATCH}, durable",
            "events": count,
            "seconds": batched,
            "events_per_s": count / batched,
            "sha256_only_s": floor,
            "ratio_to_sha256": batched / floor,
        }
    )
    single = min(count // 10, 2000)
    store = SqliteLedger(tmp / "single.db")
    start = time.perf_counter()
    for draft in drafts[:single]:
        store.append([draft])
    one = time.perf_counter() - start
    store.close()
    floor = _sha_only(leaves[:single])
    rows.append(
        {
            "case": "append, one event per durable commit",
            "events": single,
            "seconds": one,
            "events_per_s": single / one,
            "sha256_only_s": floor,
            "ratio_to_sha256": one / floor,
        }
    )
    return rows


def bench_verify(tmp: Path, count: int) -> tuple[list[dict[str, Any]], SqliteLedger]:
    store = SqliteLedger(tmp / "verify.db")
    drafts = _drafts(BATCH * 10)
    for i in range(0, count, len(drafts)):
        store.append(drafts[: min(len(drafts), count - i)])
    head = store.head()
    checkpoints = [store.head()]  # one checkpoint at the end, as after `kiln audit verify`

    def run() -> None:
        outcome = verify_log(store.rows(), checkpoints, head=head)
        if not isinstance(outcome, Verified) or outcome.size != count:
            raise SystemExit(f"verification failed: {outcome}")

    seconds, _ = median_time(run, repeat=3)
    leaves = [entry.leaf for entry in store.entries()]
    in_memory = list(store.entries())
    mem_seconds, _ = median_time(lambda: verify_log(in_memory, checkpoints), repeat=3)
    floor = _sha_only(leaves)
    total = sum(len(x) for x in leaves)
    rows = [
        {
            "case": "verify from the SQLite file",
            "events": count,
            "mbytes": total / 1e6,
            "seconds": seconds,
            "events_per_s": count / seconds,
            "sha256_only_s": floor,
            "ratio_to_sha256": seconds / floor,
        },
        {
            "case": "verify, entries already in memory",
            "events": count,
            "mbytes": total / 1e6,
            "seconds": mem_seconds,
            "events_per_s": count / mem_seconds,
            "sha256_only_s": floor,
            "ratio_to_sha256": mem_seconds / floor,
        },
    ]
    return rows, store


def bench_proofs(store: SqliteLedger, sizes: Sequence[int]) -> list[dict[str, Any]]:
    rng = random.Random(6962)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        root = merkle.range_hash(store, 0, size)
        seqs = [rng.randrange(size) for _ in range(50)]
        gen: list[float] = []
        ver: list[float] = []
        lengths: list[int] = []
        for seq in seqs:
            leaf = store.node(0, seq)
            start = time.perf_counter()
            path = merkle.inclusion_proof(store, seq, size)
            gen.append(time.perf_counter() - start)
            start = time.perf_counter()
            ok = merkle.verify_inclusion(seq, size, leaf, path, root)
            ver.append(time.perf_counter() - start)
            if not ok:
                raise SystemExit(f"inclusion proof of {seq} in {size} failed")
            lengths.append(len(path))
        old = max(1, size // 3 + 1)
        old_root = merkle.range_hash(store, 0, old) if old & (old - 1) == 0 else None
        start = time.perf_counter()
        cproof = merkle.consistency_proof(store, old, size)
        cgen = time.perf_counter() - start
        if old_root is None:
            old_root = merkle.root_of([store.node(0, i) for i in range(old)])
        start = time.perf_counter()
        cok = merkle.verify_consistency(old, size, old_root, root, cproof)
        cver = time.perf_counter() - start
        if not cok:
            raise SystemExit(f"consistency proof {old} -> {size} failed")
        hashes = statistics.median(lengths)
        node = b"\x01" + b"\x00" * 64
        sha_floor, _ = median_time(
            lambda h=int(hashes), n=node: [hashlib.sha256(n).digest() for _ in range(h)], repeat=20
        )
        rows.append(
            {
                "log_size": size,
                "inclusion_hashes": hashes,
                "inclusion_bytes": hashes * 32,
                "inclusion_gen_ms": statistics.median(gen) * 1e3,
                "inclusion_verify_ms": statistics.median(ver) * 1e3,
                "sha256_only_ms": sha_floor * 1e3,
                "consistency_hashes": len(cproof),
                "consistency_gen_ms": cgen * 1e3,
                "consistency_verify_ms": cver * 1e3,
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_ledger")
    parser.add_argument("--quick", action="store_true", help="far fewer events")
    args, _ = parser.parse_known_args(argv)
    appends = 20_000 if args.quick else 200_000
    verify_n = 50_000 if args.quick else 1_000_000
    sizes = [s for s in (1_000, 10_000, 100_000, 1_000_000) if s <= verify_n]
    with tempfile.TemporaryDirectory(prefix="kiln-bench-ledger-") as tmp:
        base = Path(tmp)
        meta = {
            "quick": args.quick,
            "batch": BATCH,
            "durability": "WAL, synchronous=FULL",
            # Timings on a shared machine move with its load: record it beside them.
            "load_average_at_start": os.getloadavg(),
        }
        report("ledger_append", bench_append(base, appends), meta)
        rows, store = bench_verify(base, verify_n)
        report("ledger_verify", rows, {**meta, "target_seconds_for_1M": 5})
        report("ledger_proofs", bench_proofs(store, sizes), meta)
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
