"""Embedded router vs HAProxy vs direct, in one run, against the same backend.

Backend: an HAProxy frontend answering ``http-request return status 200 ...``
(single thread), far faster than any Python app, so it is not the bottleneck.
Proxies under test, each a single process/thread: HAProxy 2.6 driven by kiln's
``HAProxyRouter`` (the production config from ``base_config``) and ``kiln
router`` (uvloop + httptools). Both route one release to the backend.

1. Capacity: ``wrk -t2 -c32`` against direct, HAProxy and kiln, interleaved,
   ``--runs`` times. Besides req/s, the **CPU time per request** of the one
   process serving each target (utime + stime from /proc/PID/stat over the run,
   divided by the requests): on a shared machine req/s swing with the scheduler,
   CPU per request much less, so both are headline figures.
2. Added latency at 50 % of each proxy's own measured capacity: the open-loop
   generator ``benchmarks.loadgen`` sends at that fixed rate to the proxy and,
   right before, to the backend directly; added p50/p99 = proxy - direct, per
   repetition, then the median.

Medians of ``--runs`` repetitions; table + JSON through ``benchmarks.common``.
Nothing is pinned or niced: read ratios and CPU per request, not absolute req/s.

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


def start_static_backend(work: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """An HAProxy frontend answering ``200 ok`` itself (far faster than any Python
    app); its port and process, once it listens."""
    port = _free_port()
    static = work / "static.cfg"
    static.write_text(
        "global\n    nbthread 1\n"
        "defaults\n    mode http\n    timeout client 30s\n    timeout server 30s\n"
        "    timeout connect 5s\n"
        f"frontend static\n    bind 127.0.0.1:{port}\n"
        "    http-request return status 200 content-type text/plain string ok\n"
    )
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    proc = subprocess.Popen([haproxy, "-db", "-f", str(static)], stderr=subprocess.DEVNULL)
    _wait_port(port)
    return port, proc


def bench_arguments(prog: str, argv: list[str] | None, runs: int) -> tuple[int, float, bool]:
    """(runs, seconds per run, quick) from the command line; exits with a message
    when wrk or haproxy is missing."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--quick", action="store_true", help="smoke-sized run")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    for tool in ("wrk", "haproxy"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{prog}: {tool} is not installed; skipping")
    quick = bool(args.quick)
    return (
        args.runs or (1 if quick else runs),
        args.seconds or (1.5 if quick else 5.0),
        quick,
    )


@contextmanager
def _environment(work: Path) -> Iterator[dict[str, tuple[str, int]]]:
    """Start backend, HAProxy proxy and kiln router; yield name -> (URL, pid)."""
    procs: list[subprocess.Popen[bytes]] = []
    haproxy_proxy: HAProxyProcess | None = None
    try:
        backend_port, backend = start_static_backend(work)
        procs.append(backend)
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
        if ready.get("loop") != "uvloop":
            raise RuntimeError(f"kiln router runs on {ready.get('loop')}, not uvloop")
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


def _loadgen(url: str, seconds: float, rate: float) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            url,
            "--rate",
            f"{rate:.0f}",
            "--seconds",
            f"{seconds}",
            "--connections",
            str(CONNECTIONS),
            "--warmup",
            "0.3",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main(argv: list[str] | None = None) -> int:
    runs, seconds, quick = bench_arguments("bench_router", argv, 3)
    names = ("direct", "haproxy", "kiln")
    proxies = ("haproxy", "kiln")
    lat_seconds = max(1.0, seconds * (0.8 if quick else 0.7))
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
        rate = {p: 0.5 * rps[p] for p in proxies}
        # Per repetition and proxy: direct then proxy at the proxy's half capacity.
        lat: dict[str, list[dict[str, float]]] = {p: [] for p in proxies}
        base: dict[str, list[dict[str, float]]] = {p: [] for p in proxies}
        for _ in range(runs):
            for proxy in proxies:
                base[proxy].append(_loadgen(urls["direct"][0], lat_seconds, rate[proxy]))
                lat[proxy].append(_loadgen(urls[proxy][0], lat_seconds, rate[proxy]))

    def med(samples: list[dict[str, float]], key: str) -> float:
        return statistics.median(s[key] for s in samples)

    def added(proxy: str, key: str) -> float:
        return statistics.median(
            p[key] - d[key] for p, d in zip(lat[proxy], base[proxy], strict=True)
        )

    rows: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {
            "target": name,
            "rps_median": round(rps[name]),
            "x_haproxy": rps[name] / rps["haproxy"],
            "cpu_us_per_req": cpu_us[name],
            "cpu_x_haproxy": cpu_us[name] / cpu_us["haproxy"],
        }
        if name in proxies:
            row.update(
                {
                    "rate_50pct": round(rate[name]),
                    "p50_ms": med(lat[name], "p50_ms"),
                    "p99_ms": med(lat[name], "p99_ms"),
                    "direct_p50_ms": med(base[name], "p50_ms"),
                    "direct_p99_ms": med(base[name], "p99_ms"),
                    "added_p50_ms": added(name, "p50_ms"),
                    "added_p99_ms": added(name, "p99_ms"),
                    "errors": sum(s["errors"] for s in lat[name]),
                }
            )
        rows.append(row)
    lag = max(med(base[p] + lat[p], "send_lag_p99_ms") for p in proxies)
    meta = {
        "runs": runs,
        "seconds": seconds,
        "latency_seconds": lat_seconds,
        "connections": CONNECTIONS,
        "throughput_tool": "wrk -t2 -c32",
        "latency_tool": "benchmarks.loadgen (open loop, fixed rate, 1 ms send batches, "
        "latency from the due time)",
        "samples_rps": thr,
        "samples_cpu_us_per_req": cpu,
        "samples_latency": {"proxy": lat, "direct": base},
        "generator_send_lag_p99_ms": lag,
        "cpu_note": "CPU time of the one process serving each target (direct: the backend) "
        "per request during the wrk runs; less sensitive to a shared machine than req/s",
        "targets": {
            "kiln_throughput_vs_haproxy": ">= 0.8",
            "kiln_added_p99_ms_at_half_capacity": "<= 1.0",
        },
    }
    report("bench_router", rows, meta)
    print(
        f"kiln: throughput {rps['kiln'] / rps['haproxy']:.2f}x HAProxy, "
        f"CPU per request {cpu_us['kiln']:.1f} us vs HAProxy {cpu_us['haproxy']:.1f} us "
        f"({cpu_us['haproxy'] / cpu_us['kiln']:.2f}x HAProxy's efficiency); "
        f"added p50/p99 at 50% load: kiln {added('kiln', 'p50_ms'):.2f}/"
        f"{added('kiln', 'p99_ms'):.2f} ms @ {round(rate['kiln'])}/s, HAProxy "
        f"{added('haproxy', 'p50_ms'):.2f}/{added('haproxy', 'p99_ms'):.2f} ms "
        f"@ {round(rate['haproxy'])}/s (generator send lag p99 {lag:.2f} ms)"
    )
    if lag > 1.0:
        print(
            "warning: the load generator itself sent requests up to "
            f"{lag:.1f} ms late: the machine is too busy for the latency figures to be "
            "the proxies'; read throughput and CPU per request"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
