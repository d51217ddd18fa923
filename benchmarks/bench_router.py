"""Embedded router vs HAProxy vs direct, in one run, against the same backend.

Backend: an HAProxy frontend answering ``http-request return status 200 ...``
(single thread), far faster than any Python app, so it is not the bottleneck.
Proxies under test, each a single process/thread: HAProxy 2.6 driven by kiln's
``HAProxyRouter`` (the production config from ``base_config``) and ``kiln
router`` (uvloop + httptools). Both route one release to the backend.

1. Throughput: ``wrk -t2 -c32`` against direct, HAProxy and kiln, interleaved,
   ``--runs`` times; medians and ratios.
2. Added latency at a fixed rate of 50 % of kiln's measured capacity: wrk2 is
   not installed here, so ``hey -c 32 -q RATE/32`` (hey's per-worker rate limit)
   offers the same rate to each target; p50/p99 minus direct's are the added
   latency. hey reports to 0.1 ms.

The machine is shared (2 cores, other jobs): nothing is pinned or niced; read
the ratios, not the absolute figures.

    .venv/bin/python -m benchmarks.bench_router [--quick] [--runs N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from benchmarks.common import report
from kiln.adapters.traffic.haproxy import HAProxyProcess, HAProxyRouter, base_config
from kiln.core.traffic.table import Backend, Release, RouteTable

CONNECTIONS = 32


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {port}")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _environment(work: Path) -> Iterator[dict[str, tuple[str, int]]]:
    """Start backend, HAProxy proxy and kiln router; yield name -> (URL, pid)."""
    procs: list[subprocess.Popen[bytes]] = []
    haproxy_proxy: HAProxyProcess | None = None
    try:
        backend_port = _free_port()
        static = work / "static.cfg"
        static.write_text(
            "global\n    nbthread 1\n"
            "defaults\n    mode http\n    timeout client 30s\n    timeout server 30s\n"
            "    timeout connect 5s\n"
            f"frontend static\n    bind 127.0.0.1:{backend_port}\n"
            "    http-request return status 200 content-type text/plain string ok\n"
        )
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        procs.append(
            subprocess.Popen([haproxy, "-db", "-f", str(static)], stderr=subprocess.DEVNULL)
        )
        _wait_port(backend_port)
        table = RouteTable(1, "bench", (Release("r", 100, (Backend("127.0.0.1", backend_port),)),))

        proxy_port = _free_port()
        cfg, sock = work / "proxy.cfg", work / "proxy.sock"
        cfg.write_text(base_config("bench", f"127.0.0.1:{proxy_port}", sock))
        haproxy_proxy = HAProxyProcess(config=cfg, stats_socket=sock)
        api = haproxy_proxy.start()
        HAProxyRouter(api=api, environment="bench", state_file=work / "hap.json").apply(table)

        state = work / "kiln.json"
        state.write_bytes(table.to_json())
        kiln = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kiln",
                "router",
                "--listen",
                "127.0.0.1:0",
                "--admin-socket",
                str(work / "kiln.sock"),
                "--state-file",
                str(state),
            ],
            stdout=subprocess.PIPE,
        )
        procs.append(kiln)
        assert kiln.stdout is not None
        ready = json.loads(kiln.stdout.readline())
        assert haproxy_proxy.proc is not None
        yield {
            "direct": (f"http://127.0.0.1:{backend_port}/", procs[0].pid),
            "haproxy": (f"http://127.0.0.1:{proxy_port}/", haproxy_proxy.proc.pid),
            "kiln": (f"http://{ready['listen']}/", kiln.pid),
        }
    finally:
        if haproxy_proxy is not None:
            haproxy_proxy.stop()
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


def _wrk(url: str, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": total, "non_2xx": float(errors.group(1)) if errors else 0.0}


def _hey(url: str, seconds: float, rate: float) -> dict[str, float]:
    per_worker = max(1.0, rate / CONNECTIONS)
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{max(1, round(seconds))}s",
            "-c",
            str(CONNECTIONS),
            "-q",
            f"{per_worker:.1f}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout

    def pct(p: str) -> float:
        found = re.search(rf"\s{p}% in ([\d.]+) secs", out)
        return float(found.group(1)) * 1000 if found else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"p50_ms": pct("50"), "p99_ms": pct("99"), "rps": float(rps.group(1)) if rps else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_router")
    parser.add_argument("--quick", action="store_true", help="smoke-sized run")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    for tool in ("wrk", "hey", "haproxy"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench_router: {tool} is not installed; skipping", file=sys.stderr)
            return 1
    names = ("direct", "haproxy", "kiln")
    with tempfile.TemporaryDirectory() as tmp, _environment(Path(tmp)) as urls:
        for name in names:  # warm connections and pools
            _wrk(urls[name][0], 1)
        thr: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(runs):
            for name in names:
                url, pid = urls[name]
                before = _cpu_seconds(pid)
                got = _wrk(url, seconds)
                cpu[name].append((_cpu_seconds(pid) - before) / got["requests"] * 1e6)
                thr[name].append(got["rps"])
        rps = {n: statistics.median(v) for n, v in thr.items()}
        cpu_us = {n: statistics.median(v) for n, v in cpu.items()}
        rate = 0.5 * rps["kiln"]
        lat: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for _ in range(runs):
            for name in names:
                lat[name].append(_hey(urls[name][0], seconds, rate))
    p50 = {n: statistics.median(r["p50_ms"] for r in v) for n, v in lat.items()}
    p99 = {n: statistics.median(r["p99_ms"] for r in v) for n, v in lat.items()}
    rows: list[dict[str, Any]] = []
    for name in names:
        rows.append(
            {
                "target": name,
                "rps_median": round(rps[name]),
                "x_haproxy": rps[name] / rps["haproxy"],
                "x_direct": rps[name] / rps["direct"],
                "cpu_us_per_req": cpu_us[name],
                "p50_ms@rate": p50[name],
                "p99_ms@rate": p99[name],
                "added_p50_ms": p50[name] - p50["direct"],
                "added_p99_ms": p99[name] - p99["direct"],
            }
        )
    meta = {
        "runs": runs,
        "seconds": seconds,
        "connections": CONNECTIONS,
        "fixed_rate_rps": round(rate),
        "fixed_rate_tool": "hey -q (per-worker rate limit; wrk2 not installed)",
        "throughput_tool": "wrk -t2 -c32",
        "samples_rps": thr,
        "samples_cpu_us_per_req": cpu,
        "cpu_note": "CPU time of the one process serving each target (direct: the backend) "
        "per request during the wrk runs; less sensitive to a shared machine than req/s",
        "targets": {
            "kiln_throughput_vs_haproxy": ">= 0.8",
            "kiln_added_p99_ms_at_half_capacity": "<= 1.0",
        },
    }
    report("bench_router", rows, meta)
    print(
        f"kiln throughput = {rps['kiln'] / rps['haproxy']:.2f}x HAProxy; "
        f"added p99 at {round(rate)} req/s = {p99['kiln'] - p99['direct']:.2f} ms "
        f"(HAProxy: {p99['haproxy'] - p99['direct']:.2f} ms); CPU per request: kiln "
        f"{cpu_us['kiln']:.0f} us, HAProxy {cpu_us['haproxy']:.0f} us"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
