"""What the rule maps and stickiness cost HAProxy: the same router three ways.

Three single-thread HAProxy proxies built from ``base_config``, routing to the
same backend (an HAProxy frontend answering ``http-request return``, not the
bottleneck), all serving one release:

- ``plain``: no ``rules`` (the config the router benchmark measures);
- ``maps``: with ``rules`` (what the controller generates) and a table with no
  rule and no stickiness: the per-request map lookups that find nothing;
- ``sticky``: with ``rules``, a sticky table and one header rule no request
  carries: every request is placed by weight and answered with ``Set-Cookie``.

``wrk -t2 -c32`` runs against each, interleaved, ``--runs`` times; per proxy the
median req/s and HAProxy's CPU time per request. Read ratios, not absolute req/s.

    .venv/bin/python -m benchmarks.bench_haproxy_rules [--quick] [--runs N] [--seconds S]
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
from kiln.adapters.traffic.haproxy_rules import RuleMaps
from kiln.core.traffic.table import Backend, HeaderMatch, Release, RouteTable, Sticky

NAMES = ("plain", "maps", "sticky")


def _table(name: str, backend_port: int) -> RouteTable:
    releases = (Release("r", 100, (Backend("127.0.0.1", backend_port),)),)
    if name != "sticky":
        return RouteTable(1, "bench", releases)
    return RouteTable(1, "bench", releases, (HeaderMatch("x-never", "1", "r"),), Sticky())


@contextmanager
def _proxies(work: Path) -> Iterator[dict[str, tuple[str, int]]]:
    """name -> (URL, HAProxy's pid)."""
    static_proc: subprocess.Popen[bytes] | None = None
    started: list[HAProxyProcess] = []
    try:
        backend_port, static_proc = start_static_backend(work)
        out: dict[str, tuple[str, int]] = {}
        for name in NAMES:
            port = _free_port()
            cfg, sock = work / f"{name}.cfg", work / f"{name}.sock"
            maps = None if name == "plain" else RuleMaps.beside(work / name)
            for path in maps.files() if maps is not None else ():
                path.write_text("")
            cfg.write_text(base_config("bench", f"127.0.0.1:{port}", sock, rules=maps))
            process = HAProxyProcess(config=cfg, stats_socket=sock)
            started.append(process)
            router = HAProxyRouter(
                api=process.start(),
                environment="bench",
                state_file=work / f"{name}.json",
                rules=maps,
            )
            router.apply(_table(name, backend_port))
            assert process.proc is not None
            out[name] = (f"http://127.0.0.1:{port}/", process.proc.pid)
        yield out
    finally:
        for process in started:
            process.stop()
        if static_proc is not None:
            static_proc.kill()
            static_proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    runs, seconds, _ = bench_arguments("bench_haproxy_rules", argv, 5)
    rps: dict[str, list[float]] = {n: [] for n in NAMES}
    cpu: dict[str, list[float]] = {n: [] for n in NAMES}
    with tempfile.TemporaryDirectory() as tmp, _proxies(Path(tmp)) as proxies:
        for url, _ in proxies.values():
            _wrk(url, 1)  # warm connections and pools
        for _ in range(runs):
            for name in NAMES:
                url, pid = proxies[name]
                before = _cpu_seconds(pid)
                got = _wrk(url, seconds)
                cpu[name].append((_cpu_seconds(pid) - before) / got["requests"] * 1e6)
                rps[name].append(got["rps"])
    median = {n: statistics.median(v) for n, v in rps.items()}
    cpu_us = {n: statistics.median(v) for n, v in cpu.items()}
    rows: list[dict[str, Any]] = [
        {
            "proxy": f"haproxy ({name})",
            "rps_median": round(median[name]),
            "x_plain": median[name] / median["plain"],
            "haproxy_cpu_us_per_req": cpu_us[name],
            "x_plain_cpu": cpu_us[name] / cpu_us["plain"],
        }
        for name in NAMES
    ]
    meta = {
        "runs": runs,
        "seconds": seconds,
        "tool": "wrk -t2 -c32, closed loop at saturation",
        "samples_rps": rps,
        "samples_haproxy_cpu_us_per_req": cpu,
    }
    report("bench_haproxy_rules", rows, meta)
    print(
        "rule maps: "
        + ", ".join(
            f"{n} {median[n] / median['plain']:.2f}x req/s, "
            f"{cpu_us[n] / cpu_us['plain']:.2f}x CPU per request"
            for n in NAMES[1:]
        )
        + " (vs no maps)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
