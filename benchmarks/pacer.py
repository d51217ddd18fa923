"""Build and run ``pacer``, the C open-loop load generator (``benchmarks/pacer.c``).

The Python generator (``benchmarks.loadgen``) wakes once a millisecond, so its
own send lag is larger than the sub-millisecond latency the router benchmark has
to resolve. ``pacer`` paces with nanosecond timers (woken at most once per
quantum, 100 us by default) and measures several targets in one run, by
alternating short windows or by interleaving their requests, so the machine's
stalls fall on each target alike.
See the comment at the top of ``pacer.c`` for the method.

The binary is compiled on first use with the machine's C compiler (``$CC``, else
``cc``) into ``.bench/bin/pacer-<hash of the source>``, so an edited source is
rebuilt and a stale binary is never run.

    python -m benchmarks.pacer http://127.0.0.1:8080/ [URL ...] --rate 5000 --seconds 5

prints the generator's JSON: the run's settings and, under ``targets``, one object
per URL with the keys of ``benchmarks.loadgen``. Each target gets ``--rate``: in
its own windows (``--window-ms``, default 100), or all the time with
``--window-ms 0`` (interleaved: n targets, n times the requests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.common import OUT

SOURCE = Path(__file__).with_name("pacer.c")


class PacerUnavailable(RuntimeError):
    """No C compiler, or the source did not compile: the caller may fall back to
    the Python generator and must say so."""


def build(cache: Path | None = None) -> Path:
    """The compiled generator for the current source, compiling it if needed."""
    source = SOURCE.read_bytes()
    cache = cache or OUT / "bin"
    binary = cache / f"pacer-{hashlib.sha256(source).hexdigest()[:16]}"
    if binary.exists():
        return binary
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise PacerUnavailable("no C compiler (cc or gcc) to build benchmarks/pacer.c")
    cache.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    try:
        done = subprocess.run(
            [compiler, "-O2", "-Wall", "-Wextra", "-o", str(partial), str(SOURCE), "-lm"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise PacerUnavailable(f"cannot run the C compiler {compiler!r}: {exc}") from exc
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise PacerUnavailable(f"{compiler} could not build {SOURCE}:\n{done.stderr.strip()}")
    partial.replace(binary)  # a concurrent build of the same source is identical
    return binary


def _target(url: str) -> tuple[str, str]:
    """``host:port`` and path of an ``http://IPV4:PORT/PATH`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r}: give http://IPV4:PORT/PATH (pacer speaks plain HTTP/1.1)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return f"{parts.hostname}:{parts.port}", path


def command(
    urls: Sequence[str],
    *,
    rate: float,
    seconds: float,
    connections: int = 32,
    warmup: float = 0.5,
    window_ms: float = 100.0,
    quantum_us: float = 100.0,
    poisson: bool = False,
    samples: Path | None = None,
    binary: Path | None = None,
) -> list[str]:
    """The pacer command line for these targets (all with the same path)."""
    targets = [_target(url) for url in urls]
    paths = {path for _, path in targets}
    if len(paths) != 1:
        raise ValueError(f"every target must have the same path, got {sorted(paths)}")
    argv = [str(binary or build())]
    for hostport, _ in targets:
        argv += ["-t", hostport]
    argv += ["-u", paths.pop(), "-r", f"{rate:.3f}", "-d", f"{seconds}", "-c", str(connections)]
    argv += ["-w", f"{warmup}", "-W", f"{window_ms}", "-q", f"{quantum_us}"]
    if samples is not None:
        argv += ["-o", str(samples)]
    return [*argv, "-p"] if poisson else argv


def run(urls: Sequence[str], *, prefix: Sequence[str] = (), **options: Any) -> dict[str, Any]:
    """Run the generator (under ``prefix``, e.g. taskset/chrt) and return its JSON."""
    argv = [*prefix, *command(urls, **options)]
    seconds = float(options.get("seconds", 5.0)) + float(options.get("warmup", 0.5))
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"pacer did not finish within {exc.timeout:.0f} s") from None
    if done.returncode != 0:
        raise RuntimeError(f"pacer exited {done.returncode}: {done.stderr.strip()}")
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"pacer printed no JSON ({exc}): {done.stdout[:200]!r}") from None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pacer", description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", nargs="+", metavar="URL")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured duration")
    parser.add_argument("--connections", type=int, default=32, help="per target")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds sent, not counted")
    parser.add_argument(
        "--window-ms", type=float, default=100.0, help="alternation window; 0 interleaves"
    )
    parser.add_argument("--quantum-us", type=float, default=100.0, help="shortest sleep")
    parser.add_argument("--poisson", action="store_true", help="Poisson arrivals")
    parser.add_argument("--samples", type=Path, help="write every answer to this CSV")
    args = parser.parse_args(argv)
    try:
        result = run(
            args.urls,
            rate=args.rate,
            seconds=args.seconds,
            connections=args.connections,
            warmup=args.warmup,
            window_ms=args.window_ms,
            quantum_us=args.quantum_us,
            poisson=args.poisson,
            samples=args.samples,
        )
    except (PacerUnavailable, ValueError, RuntimeError) as exc:
        print(f"pacer: {exc}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
