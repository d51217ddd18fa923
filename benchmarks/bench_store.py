"""Store throughput: reading a blob back with its digest verified vs hashing alone.

Side by side in one run, over the same file in the page cache:

* ``hashlib.sha256`` over the file in 1 MiB reads (the floor: verification
  cannot be cheaper than hashing);
* ``sha256sum`` of the blob file (the coreutils baseline);
* ``LocalStore.open_blob`` read to the end (verifying reader);
* ``LocalStore.writer`` write + fsync + link of the same bytes (write once).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from kiln.adapters.artifacts.local import LocalStore

_CHUNK = 1 << 20


def _time(func: object, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_store")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    size, repeat = (16 << 20, 3) if args.quick else (256 << 20, 5)
    with tempfile.TemporaryDirectory(prefix="kiln-bench-store-") as tmp:
        store = LocalStore(Path(tmp) / "store")
        block = os.urandom(_CHUNK)
        with store.writer() as out:
            for i in range(size // _CHUNK):
                out.write(block[i % 7 :] + block[: i % 7])
            info = out.commit()
        path = store.blob_path(info.digest)

        def plain_hash() -> None:
            h = hashlib.sha256()
            with open(path, "rb", buffering=0) as handle:
                while chunk := handle.read(_CHUNK):
                    h.update(chunk)

        def coreutils() -> None:
            subprocess.run(["sha256sum", str(path)], check=True, stdout=subprocess.DEVNULL)

        def verified_read() -> None:
            with store.open_blob(info.digest) as stream:
                while stream.read(_CHUNK):
                    pass

        data = path.read_bytes()
        counter = iter(range(10_000))

        def write_once() -> None:
            other = LocalStore(Path(tmp) / f"w{next(counter)}")
            with other.writer() as out:
                view = memoryview(data)
                for offset in range(0, len(data), _CHUNK):
                    out.write(view[offset : offset + _CHUNK])
                out.commit()

        plain_hash()  # warm the page cache
        results = {
            "hashlib.sha256 (floor)": _time(plain_hash, repeat),
            "sha256sum": _time(coreutils, repeat),
            "store read + verify": _time(verified_read, repeat),
            "store write + fsync": _time(write_once, repeat),
        }
    floor = statistics.median(results["hashlib.sha256 (floor)"])
    mb = size / 1e6
    rows = [
        {
            "case": name,
            "seconds": statistics.median(samples),
            "MB/s": mb / statistics.median(samples),
            "ratio": statistics.median(samples) / floor,
        }
        for name, samples in results.items()
    ]
    report("store", rows, {"bytes": size, "repeat": repeat, "samples": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
