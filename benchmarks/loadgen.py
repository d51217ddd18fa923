"""An open-loop HTTP/1.1 load generator: a fixed request rate, latency per request.

wrk measures capacity (closed loop: a connection sends its next request when the
last one is answered) but cannot hold a rate, and wrk2 is not installed here.
This sends at a fixed rate whatever the target does, over a pool of keep-alive
connections, and times each request from the moment it was *due* (not the moment
a connection was free to send it), so a stalled target shows as latency instead
of silently lowering the offered rate ("coordinated omission").

Requests become due every 1/rate seconds; the event loop's timers have
millisecond resolution, so the due requests go out in 1 ms batches (at 10,000
req/s, ten per millisecond), the same for every target measured.

    python -m benchmarks.loadgen http://127.0.0.1:8080/ --rate 5000 --seconds 5

prints one JSON object: offered and achieved rate, completed, errors, and
p50/p90/p99/p99.9/max latency in milliseconds (requests due during the warm-up
are sent but not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import deque
from time import perf_counter_ns
from typing import Any
from urllib.parse import urlsplit

import httptools

TICK = 0.001


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time."""

    def __init__(self, gen: LoadGenerator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.due = 0  # when the request in flight was due (perf_counter_ns)
        self.sent = 0  # when it was actually written
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def send(self, due: int) -> None:
        self.due = due
        self.busy = True
        assert self.transport is not None
        self.transport.write(self.gen.request)
        self.sent = sent = perf_counter_ns()
        if due >= self.gen.count_from:
            self.gen.lags.append(sent - due)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.gen.errors += 1
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        self.busy = False
        self.gen.answered(self, self.due, self.sent, 200 <= status < 400)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.gen.errors += 1
            self.busy = False
        self.gen.dropped(self)


def _run_delay_ns() -> int:
    """Nanoseconds this process has spent runnable but not running (Linux schedstat)."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class LoadGenerator:
    def __init__(self, url: str, rate: float, seconds: float, connections: int) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        self.request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
        self.rate = rate
        self.seconds = seconds
        self.connections = connections
        self.idle: deque[_Connection] = deque()
        self.backlog: deque[int] = deque()  # due times waiting for a free connection
        self.latencies: list[int] = []
        self.lags: list[int] = []  # how late each request was sent: the generator's own delay
        self.services: list[int] = []  # from the actual send to the answer (hides omission)
        self.count_from = 0  # requests due before this are warm-up
        self.errors = 0
        self.sent = 0
        self.completed = 0
        self.open: set[_Connection] = set()
        self.run_delay_ms = 0.0
        self.cpu_seconds = 0.0

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        self.open.add(conn)
        return conn

    def answered(self, conn: _Connection, due: int, sent: int, ok: bool) -> None:
        if due >= self.count_from:
            self.completed += 1
            if ok:
                now = perf_counter_ns()
                self.latencies.append(now - due)
                self.services.append(now - sent)
            else:
                self.errors += 1
        if self.backlog:
            conn.send(self.backlog.popleft())
        else:
            self.idle.append(conn)

    def dropped(self, conn: _Connection) -> None:
        self.open.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def _dispatch(self, due: int) -> None:
        self.sent += 1
        if self.idle:
            self.idle.pop().send(due)
        else:
            self.backlog.append(due)

    async def run(self, warmup: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for conn in await asyncio.gather(*(self._connect() for _ in range(self.connections))):
            self.idle.append(conn)
        interval = 1e9 / self.rate
        start = perf_counter_ns()
        self.count_from = start + int(warmup * 1e9)
        end = start + int((warmup + self.seconds) * 1e9)
        index = 0
        done = loop.create_future()

        def tick() -> None:
            nonlocal index
            now = perf_counter_ns()
            while True:
                due = start + int(index * interval)
                if due > now or due >= end:
                    break
                index += 1
                self._dispatch(due)
            if now < end:
                loop.call_later(TICK, tick)
            else:
                done.set_result(None)

        waited, used = _run_delay_ns(), _cpu_seconds()
        tick()
        await done
        self.run_delay_ms = (_run_delay_ns() - waited) / 1e6
        self.cpu_seconds = _cpu_seconds() - used
        # Let the requests in flight finish (bounded), then close.
        deadline = loop.time() + 5.0
        while (self.backlog or any(c.busy for c in self.open)) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        unanswered = len(self.backlog) + sum(1 for c in self.open if c.busy)
        for conn in list(self.open):
            if conn.transport is not None:
                conn.transport.close()
        return self._summary(unanswered)

    def _summary(self, unanswered: int) -> dict[str, Any]:
        lat = sorted(self.latencies)
        lags = sorted(self.lags)
        services = sorted(self.services)

        def pct(p: float, values: list[int] = lat) -> float:
            if not values:
                return float("nan")
            return values[min(len(values) - 1, int(p / 100 * len(values)))] / 1e6

        return {
            "offered_rps": self.rate,
            "achieved_rps": self.completed / self.seconds,
            "completed": self.completed,
            "errors": self.errors + unanswered,
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "p999_ms": pct(99.9),
            "max_ms": lat[-1] / 1e6 if lat else float("nan"),
            # Sent this late after being due (batching, a busy or descheduled generator,
            # no free connection): part of every latency above, whatever the target.
            "send_lag_p50_ms": pct(50, lags),
            "send_lag_p99_ms": pct(99, lags),
            # From the actual write to the answer: what a closed-loop tool reports. It
            # hides coordinated omission; shown only to tell the generator's share.
            "service_p50_ms": pct(50, services),
            "service_p99_ms": pct(99, services),
            "service_p999_ms": pct(99.9, services),
            # Time this process was runnable but waiting for a CPU during the run, and
            # the CPU it used per request sent (its own share of a shared CPU).
            "generator_cpu_wait_ms": self.run_delay_ms,
            "generator_cpu_us_per_req": self.cpu_seconds / max(1, self.sent) * 1e6,
            "loadavg_1m": os.getloadavg()[0],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured duration")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds sent, not counted")
    args = parser.parse_args(argv)
    gen = LoadGenerator(args.url, args.rate, args.seconds, args.connections)
    try:
        import uvloop

        result = uvloop.run(gen.run(args.warmup))
    except ImportError:  # pragma: no cover - uvloop is a locked dependency
        result = asyncio.run(gen.run(args.warmup))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
