"""What HAProxy's request log costs: the same HAProxy router with and without it.

Two single-thread HAProxy proxies built from ``base_config``, one of them with
``log_fd`` (one line per request into the named pipe that kiln's ``LatencyLog``
reads, here on a thread of this process, as in the controller), route to the
same backend: an HAProxy frontend answering ``http-request return`` (not the
bottleneck). ``wrk -t2 -c32`` runs against each, interleaved, ``--runs`` times.

Per proxy: median req/s, HAProxy's CPU time per request, and for the logging
one the reader's CPU time per request (this process's, over the run: it does
nothing else meanwhile), lines read and lines HAProxy dropped (``DroppedLogs``)
as a share of requests. Side by side in one run; read ratios, not absolute req/s.

    .venv/bin/python -m benchmarks.bench_haproxy_log [--quick] [--runs N] [--seconds S]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bench_router import (
    _cpu_seconds,
    _free_port,
    _wrk,
    bench_arguments,
    start_static_backend,
)
from benchmarks.common import report
from kiln.adapters.traffic.haproxy import HAProxyProcess, HAProxyRouter, base_config
from kiln.adapters.traffic.haproxy_metrics import LOG_FD, CountBook, LatencyLog
from kiln.adapters.traffic.haproxy_runtime import RuntimeAPI, parse_info
from kiln.core.traffic.table import Backend, Release, RouteTable


@dataclass
class Proxy:
    url: str
    pid: int
    api: RuntimeAPI
    router: HAProxyRouter


def _self_cpu() -> float:
    times = os.times()
    return times.user + times.system


@contextmanager
def _proxies(work: Path) -> Iterator[dict[str, Proxy]]:
    static_proc: subprocess.Popen[bytes] | None = None
    started: list[HAProxyProcess] = []
    readers: list[LatencyLog] = []
    try:
        backend_port, static_proc = start_static_backend(work)
        table = RouteTable(1, "bench", (Release("r", 100, (Backend("127.0.0.1", backend_port),)),))
        out: dict[str, Proxy] = {}
        for name, logged in (("plain", False), ("logged", True)):
            port = _free_port()
            cfg, sock = work / f"{name}.cfg", work / f"{name}.sock"
            fifo = work / f"{name}.log" if logged else None
            cfg.write_text(
                base_config("bench", f"127.0.0.1:{port}", sock, log_fd=LOG_FD if logged else None)
            )
            process = HAProxyProcess(config=cfg, stats_socket=sock, log_fifo=fifo)
            started.append(process)
            api = process.start()
            book = CountBook()
            log = LatencyLog(fifo, book) if fifo is not None else None
            if log is not None:
                readers.append(log)
            router = HAProxyRouter(
                api=api, environment="bench", state_file=work / f"{name}.json", book=book, log=log
            )
            router.apply(table)
            router.metrics()  # starts the reader; the book's first read
            assert process.proc is not None
            out[name] = Proxy(f"http://127.0.0.1:{port}/", process.proc.pid, api, router)
        yield out
    finally:
        for reader in readers:
            reader.close()
        for process in started:
            process.stop()
        if static_proc is not None:
            static_proc.kill()
            static_proc.wait(timeout=10)


def _logged(proxy: Proxy) -> tuple[int, int]:
    """(lines in the histograms, lines HAProxy dropped) so far."""
    metrics = proxy.router.metrics()
    dropped = int(parse_info(proxy.api.command("show info")).get("DroppedLogs") or 0)
    release = metrics.of("r")
    observed = 0 if release is None else release.latency.count - proxy.router.book.lost
    return observed, dropped


def main(argv: list[str] | None = None) -> int:
    runs, seconds, _ = bench_arguments("bench_haproxy_log", argv, 5)
    names = ("plain", "logged")
    rps: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    reader_cpu: list[float] = []
    requests = lines = dropped = 0
    with tempfile.TemporaryDirectory() as tmp, _proxies(Path(tmp)) as proxies:
        for name in names:
            _wrk(proxies[name].url, 1)  # warm connections and pools
        lines_before, dropped_before = _logged(proxies["logged"])
        for _ in range(runs):
            for name in names:
                proxy = proxies[name]
                before, mine = _cpu_seconds(proxy.pid), _self_cpu()
                got = _wrk(proxy.url, seconds)
                time.sleep(0.2)  # let the reader finish the run's lines
                cpu[name].append((_cpu_seconds(proxy.pid) - before) / got["requests"] * 1e6)
                rps[name].append(got["rps"])
                if name == "logged":
                    reader_cpu.append((_self_cpu() - mine) / got["requests"] * 1e6)
                    requests += int(got["requests"])
        lines_after, dropped_after = _logged(proxies["logged"])
        lines, dropped = lines_after - lines_before, dropped_after - dropped_before
    median = {n: statistics.median(v) for n, v in rps.items()}
    cpu_us = {n: statistics.median(v) for n, v in cpu.items()}
    rows: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {
            "proxy": f"haproxy ({'request log' if name == 'logged' else 'no log'})",
            "rps_median": round(median[name]),
            "x_no_log": median[name] / median["plain"],
            "haproxy_cpu_us_per_req": cpu_us[name],
        }
        if name == "logged":
            row.update(
                {
                    "reader_cpu_us_per_req": statistics.median(reader_cpu),
                    "lines_read": lines,
                    "lines_dropped": dropped,
                    "dropped_share": dropped / requests if requests else 0.0,
                }
            )
        rows.append(row)
    meta = {
        "runs": runs,
        "seconds": seconds,
        "tool": "wrk -t2 -c32, closed loop at saturation",
        "samples_rps": rps,
        "samples_haproxy_cpu_us_per_req": cpu,
        "samples_reader_cpu_us_per_req": reader_cpu,
        "requests_logged_proxy": requests,
        "note": "the reader is a thread of this process (as in the controller); "
        "lines_read + lines_dropped counts every request of the logged proxy's runs",
    }
    report("bench_haproxy_log", rows, meta)
    print(
        f"request log: {median['logged'] / median['plain']:.2f}x the req/s without it "
        f"({round(median['logged'])} vs {round(median['plain'])}/s), HAProxy CPU per request "
        f"{cpu_us['logged']:.1f} vs {cpu_us['plain']:.1f} us, reader "
        f"{statistics.median(reader_cpu):.1f} us per request, "
        f"{dropped} of {requests} lines dropped"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
