"""The performance harness: the candidate and the last good release, side by side.

One run alternates the two targets (baseline, candidate, baseline, candidate,
...) with the same load generator settings, so drift in machine load hits both
sides alike; each round gives one p95 and one throughput per side, and the gate
compares medians (``kiln.core.gates.performance``). The load generator is
``hey`` (``-z`` duration, ``-c`` concurrency, ``-o csv`` one row per request).

Keep-alive is off by default: Python's ``http.server`` (and many small apps)
send headers and body in separate writes, which on a kept-alive connection
meets the peer's delayed ACK and adds ~40 ms stalls that have nothing to do
with the release under test. Fresh connections measure the app instead.
Targets must be loopback unless the caller says otherwise: a load test against
someone else's host is not something kiln does by accident.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import math
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kiln.core.gates.inputs import PerfEvidence, Side
from kiln.errors import ConfigError, InvalidInput, Permanent

Runner = Callable[[Sequence[str], float], str]


@dataclass(frozen=True)
class LoadRun:
    """One load-generator run against one URL."""

    url: str
    ok: int
    failed: int
    p95_ms: float
    throughput_rps: float


def parse_hey_csv(text: str, url: str, duration: float) -> LoadRun:
    """Summarise ``hey -o csv`` output: p95 of successful responses, 2xx per second."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "response-time" not in reader.fieldnames:
        raise InvalidInput(f"load generator output for {url} is not hey's CSV")
    times: list[float] = []
    failed = 0
    for row in reader:
        try:
            status = int(row["status-code"])
            seconds = float(row["response-time"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(f"unreadable row in hey's CSV for {url}: {row}") from None
        if 200 <= status < 300:
            times.append(seconds)
        else:
            failed += 1
    return LoadRun(
        url=url,
        ok=len(times),
        failed=failed,
        p95_ms=percentile(times, 95) * 1000.0 if times else 0.0,
        throughput_rps=len(times) / duration if duration > 0 else 0.0,
    )


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least pct% at or below it."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _run_hey(argv: Sequence[str], timeout: float) -> str:
    with _signals_held() as held:
        process = subprocess.Popen(  # noqa: S603 - argv is built here, never from a shell string
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    try:
        held.deliver()  # a Ctrl-C or SIGTERM that came while it started: now, handle in hand
        out, err = process.communicate(timeout=timeout)
    except BaseException as exc:
        process.kill()
        process.communicate()  # reaped, pipes closed: nothing outlives an interrupt
        if isinstance(exc, subprocess.TimeoutExpired):
            raise Permanent(f"the load generator did not finish within {timeout:.0f}s") from None
        raise
    if process.returncode != 0:
        raise Permanent(f"the load generator failed: {err.strip()[:300]}")
    return out


class _Held:
    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.pending: list[int] = []

    def deliver(self) -> None:
        for signum in self.pending:
            signal.raise_signal(signum)
        self.pending.clear()


@contextmanager
def _signals_held() -> Iterator[_Held]:
    """Hold Ctrl-C and SIGTERM while a child starts, and re-deliver them after.

    The KeyboardInterrupt they raise lands at any bytecode; one that lands after
    the fork but before ``Popen`` returns leaves a child nobody holds, so nobody
    stops it (``subprocess.run`` cannot either). An interrupted benchmark then
    left a ``hey`` loading the target for its whole duration. Outside the main
    thread no handler can be swapped, and there no signal lands either.
    """
    held = _Held()

    def hold(signum: int, frame: object) -> None:
        held.pending.append(signum)

    def restore() -> None:
        for number, handler in held.previous.items():
            signal.signal(number, handler)

    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not None:  # None: not set from Python, left alone
                held.previous[signum] = signal.signal(signum, hold)
    except ValueError:  # not the main thread
        pass
    try:
        yield held
    except BaseException:
        restore()
        held.deliver()  # no child started: the interrupt wins over the error
        raise
    restore()


def _loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise ConfigError(
        f"refusing to load-test {url}: only loopback targets are allowed",
        hint="measure releases through a local router or pass allow_remote=True deliberately",
    )


def measure(
    candidate_url: str,
    baseline_url: str | None,
    *,
    duration: float = 2.0,
    rounds: int = 3,
    concurrency: int = 2,
    keepalive: bool = False,
    allow_remote: bool = False,
    runner: Runner | None = None,
    hey: str | None = None,
    on_progress: Callable[[str], None] | None = None,
    warmup: float = 0.0,
) -> PerfEvidence:
    """Measure both URLs alternately, ``rounds`` times each; ``None`` baseline = first release.

    ``warmup`` seconds of the same load go to each URL first and are not
    counted: a fresh process answers its first requests slower (lazy imports,
    cold caches), which would otherwise land in whichever side runs first.
    """
    if rounds < 1 or duration <= 0 or concurrency < 1:
        raise ConfigError("rounds and concurrency must be at least 1 and duration positive")
    if candidate_url == baseline_url:
        raise ConfigError("the candidate and the baseline are the same URL; nothing to compare")
    targets = [u for u in (baseline_url, candidate_url) if u is not None]
    if not allow_remote:
        for url in targets:
            _loopback(url)
    run = runner or _run_hey
    binary = hey or shutil.which("hey")
    if runner is None and binary is None:
        raise ConfigError("the load generator `hey` is not installed", hint="apt-get install hey")
    results: dict[str, list[LoadRun]] = {u: [] for u in targets}
    names = {baseline_url: "last good", candidate_url: "candidate"}
    say = on_progress or (lambda message: None)

    def load(url: str, seconds: float) -> str:
        argv = [binary or "hey", "-z", f"{seconds:g}s", "-c", str(concurrency), "-o", "csv"]
        if not keepalive:
            argv.append("-disable-keepalive")
        argv.append(url)
        return run(argv, seconds * 3 + 30)

    if warmup > 0:
        for url in targets:
            say(f"warming up the {names[url]}, {warmup:g}s (not counted)")
            load(url, warmup)
    for index in range(rounds):
        for url in targets:
            say(f"round {index + 1}/{rounds}: {names[url]}, {duration:g}s of load")
            results[url].append(parse_hey_csv(load(url, duration), url, duration))

    def side(url: str) -> Side:
        runs = results[url]
        return Side(tuple(r.p95_ms for r in runs), tuple(r.throughput_rps for r in runs))

    return PerfEvidence(
        candidate=side(candidate_url),
        baseline=side(baseline_url) if baseline_url is not None else None,
        first_release=baseline_url is None,
    )
