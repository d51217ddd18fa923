"""Embedded router vs HAProxy vs direct, in one run, against the same backend.

Backend: an HAProxy frontend answering ``http-request return status 200 ...``
(single thread), far faster than any Python app, so it is not the bottleneck.
Proxies under test, each a single process/thread: HAProxy 2.6 driven by kiln's
``HAProxyRouter`` (the production config from ``base_config``) and ``kiln
router`` (uvloop + httptools). Both route one release to the backend.

Each placement is a phase of its own, capacity then latency, the same for every
target:

- ``pinned`` (the headline): the proxy under test alone on CPU 1, the backend and
  the client (wrk or the generator) on CPU 0, so the client's own CPU never delays
  the proxy and capacity is the proxy's one core;
- ``shared``: nothing pinned, everything competes for every CPU (the earlier
  method; on a busy 2-core machine it mostly measures the scheduler).

``--realtime`` also runs the backend, both proxies and the clients SCHED_FIFO
(root or CAP_SYS_NICE), so other jobs of a shared machine cannot preempt them;
every target alike. On a quiet machine it changes little; on a busy one it is
the difference between measuring the proxies and measuring the neighbours.

1. Capacity: ``wrk -t2 -c32`` against direct, HAProxy and kiln, interleaved,
   ``--runs`` times. Besides req/s, the **CPU time per request** of the one
   process serving each target (utime + stime from /proc/PID/stat over the run,
   divided by the requests).
2. Added latency at 50 % of each proxy's own capacity (from step 1, same phase),
   open loop at that fixed rate, latency counted from when each request was
   *due*. The default generator, ``pacer`` (``benchmarks/pacer.c``, built with the
   machine's C compiler), sends within 0.1 ms of the due time and measures the
   backend directly and the proxy in ONE run, alternating 100 ms windows, so a
   stall of the machine falls on both alike; added p50/p99/p99.9 = proxy - direct
   of that run, then the median over repetitions. ``--generator python`` uses the
   older ``benchmarks.loadgen`` (1 ms send batches, direct and proxy in two runs
   one after the other). The generator's send lag, CPU wait and CPU per request
   are reported with the machine's load, busy and steal time of the phase.

Medians of ``--runs`` repetitions; table + JSON through ``benchmarks.common``.

    .venv/bin/python -m benchmarks.bench_router [--quick] [--runs N] [--seconds S]
        [--placement pinned|shared|both] [--realtime] [--poll-idle]
        [--generator pacer|python]
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
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from benchmarks import pacer
from benchmarks.common import report
from kiln.adapters.traffic.haproxy import HAProxyProcess, HAProxyRouter, base_config
from kiln.core.traffic.table import Backend, Release, RouteTable

CONNECTIONS = 32
NAMES = ("direct", "haproxy", "kiln")
PROXIES = ("haproxy", "kiln")
# Pinned placement: the proxy under test alone on one CPU; the backend and the client
# (wrk or the generator) on another, so the client's CPU never delays the proxy.
PROXY_CPU = 1
GENERATOR_CPU = 0
RT_PRIORITY = 10


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


def _run_delay_ms(pid: int) -> float:
    """How long ``pid`` (its main thread) has been runnable but off a CPU, in ms:
    waiting behind other tasks, or throttled (real-time bandwidth limit)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e6


def _rt_limit() -> str:
    """The kernel's real-time bandwidth limit: RT tasks get at most this share of
    each CPU per period, then wait (throttled) until the period ends."""
    try:
        runtime = int(Path("/proc/sys/kernel/sched_rt_runtime_us").read_text())
        period = int(Path("/proc/sys/kernel/sched_rt_period_us").read_text())
    except OSError:
        return "unknown"
    if runtime < 0:
        return "none"
    return f"{runtime / 1000:.0f} ms per {period / 1000:.0f} ms"


def _machine_ticks() -> list[int]:
    """The machine's CPU time counters (user nice system idle iowait irq softirq steal)."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def _busy_and_steal(before: list[int], after: list[int]) -> dict[str, float]:
    delta = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(delta) or 1
    return {
        "busy_pct": 100 * (total - delta[3] - delta[4]) / total,
        "steal_pct": 100 * delta[7] / total,
    }


def _pin(pid: int, cpus: set[int], realtime: bool) -> None:
    """Pin every thread of ``pid`` to ``cpus``; with ``realtime`` also SCHED_FIFO."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        os.sched_setaffinity(tid, cpus)
        if realtime:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))


def _place(
    urls: dict[str, tuple[str, int]], placement: str, realtime: bool
) -> tuple[list[str], dict[str, str]]:
    """Place the serving processes for one phase; return the command prefix for the
    client (wrk or the generator) and a description of where everything runs."""
    every = os.sched_getaffinity(0)  # the CPUs this benchmark may use
    if placement == "shared":
        for _, pid in urls.values():
            _pin(pid, every, realtime)
        where = {"all": f"cpus {sorted(every)}, nothing pinned"}
        prefix: list[str] = []
    else:
        _pin(urls["direct"][1], {GENERATOR_CPU}, realtime)
        for proxy in PROXIES:
            _pin(urls[proxy][1], {PROXY_CPU}, realtime)
        where = {
            "proxy": f"cpu {PROXY_CPU} alone",
            "backend+client": f"cpu {GENERATOR_CPU}",
        }
        prefix = ["taskset", "-c", str(GENERATOR_CPU)]
    if realtime:
        prefix = [*prefix, "chrt", "-f", str(RT_PRIORITY)]
    return prefix, where


CPU_SYSFS = Path("/sys/devices/system/cpu")


@contextmanager
def poll_idle(cpus: set[int], root: Path = CPU_SYSFS) -> Iterator[dict[str, Any]]:
    """Keep ``cpus`` out of their halting idle states for the block, then put every
    state back as it was (also on error or Ctrl-C); yield what was changed.

    An idle CPU of a VM halts, and waking it (a request arriving for a process on
    it) waits for the hypervisor to run that virtual CPU again: tens of
    microseconds, now and then milliseconds. With only the ``POLL`` state left, an
    idle CPU spins and a wake-up is a flag it sees at once. This is the usual
    tuning for latency-sensitive proxies (limiting C-states); it costs host CPU,
    applies to every target alike, and is an option, never the default. Needs
    root (the ``disable`` files of ``cpuidle``); raises ``PermissionError``
    otherwise, ``FileNotFoundError`` where the kernel has no cpuidle states, and
    whatever ``OSError`` the kernel gives for a state it refuses to change."""
    changed: list[Path] = []
    disabled: dict[str, list[str]] = {}
    try:
        for cpu in sorted(cpus):
            states = sorted((root / f"cpu{cpu}" / "cpuidle").glob("state*"))
            if not states:
                raise FileNotFoundError(f"no cpuidle states under {root / f'cpu{cpu}'}")
            for state in states:
                name = (state / "name").read_text().strip()
                flag = state / "disable"
                if name == "POLL" or flag.read_text().strip() == "1":
                    continue
                flag.write_text("1")
                changed.append(flag)
                disabled.setdefault(f"cpu{cpu}", []).append(name)
        yield {"disabled_idle_states": disabled}
    finally:
        for flag in reversed(changed):
            flag.write_text("0")


def _wrk(url: str, seconds: float, prefix: Sequence[str] = ()) -> dict[str, float]:
    out = subprocess.run(
        [
            *prefix,
            *("wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency", url),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": total, "non_2xx": float(errors.group(1)) if errors else 0.0}


def _loadgen(url: str, seconds: float, rate: float, prefix: Sequence[str] = ()) -> dict[str, float]:
    out = subprocess.run(
        [
            *prefix,
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


PAIRINGS = ("windows", "interleaved")


def _paced(
    direct: str,
    proxy: str,
    seconds: float,
    rate: float,
    prefix: Sequence[str] = (),
    pairing: str = "windows",
) -> tuple[dict[str, float], dict[str, float]]:
    """Direct and proxy measured in one pacer run, each at ``rate`` for ``seconds``:
    in alternating 100 ms windows, or ``interleaved`` (both at once, every other
    request); their results in that order."""
    interleaved = pairing == "interleaved"
    got = pacer.run(
        [direct, proxy],
        prefix=prefix,
        rate=rate,
        seconds=seconds if interleaved else 2 * seconds,
        connections=CONNECTIONS,
        warmup=0.3,
        window_ms=0.0 if interleaved else 100.0,
    )
    first, second = got["targets"]
    return first, second


def _phase(
    urls: dict[str, tuple[str, int]],
    placement: str,
    *,
    realtime: bool,
    runs: int,
    seconds: float,
    lat_seconds: float,
    generator: str,
    pairing: str = "windows",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Capacity, then added latency at half of it, with one placement for everything."""
    prefix, where = _place(urls, placement, realtime)
    load_before, ticks_before = os.getloadavg()[0], _machine_ticks()
    for name in NAMES:  # warm connections and pools
        _wrk(urls[name][0], 1, prefix)
    thr: dict[str, list[float]] = {n: [] for n in NAMES}
    cpu: dict[str, list[float]] = {n: [] for n in NAMES}
    for _ in range(runs):
        for name in NAMES:
            url, pid = urls[name]
            before = _cpu_seconds(pid)
            got = _wrk(url, seconds, prefix)
            cpu[name].append((_cpu_seconds(pid) - before) / got["requests"] * 1e6)
            thr[name].append(got["rps"])
    rps = {n: statistics.median(v) for n, v in thr.items()}
    cpu_us = {n: statistics.median(v) for n, v in cpu.items()}
    rate = {p: 0.5 * rps[p] for p in PROXIES}
    # Per repetition and proxy: direct then proxy at the proxy's half capacity.
    lat: dict[str, list[dict[str, float]]] = {p: [] for p in PROXIES}
    base: dict[str, list[dict[str, float]]] = {p: [] for p in PROXIES}
    # The closed-loop wrk runs keep a CPU 100 % busy; under --realtime that uses up
    # the RT budget of the current period (see _rt_limit). Wait out one period so a
    # throttle that wrk earned cannot fall on the first latency run.
    time.sleep(1.1)
    for _ in range(runs):
        for proxy in PROXIES:
            waited = _run_delay_ms(urls[proxy][1])
            if generator == "pacer":
                direct, got = _paced(
                    urls["direct"][0], urls[proxy][0], lat_seconds, rate[proxy], prefix, pairing
                )
            else:
                direct = _loadgen(urls["direct"][0], lat_seconds, rate[proxy], prefix)
                waited = _run_delay_ms(urls[proxy][1])
                got = _loadgen(urls[proxy][0], lat_seconds, rate[proxy], prefix)
            # The proxy's own time off a CPU during its run: a stall it did not cause.
            got["proxy_cpu_wait_ms"] = _run_delay_ms(urls[proxy][1]) - waited
            base[proxy].append(direct)
            lat[proxy].append(got)
    load_after, machine = os.getloadavg()[0], _busy_and_steal(ticks_before, _machine_ticks())

    def med(samples: list[dict[str, float]], key: str) -> float:
        return statistics.median(s[key] for s in samples)

    def added(proxy: str, key: str) -> float:
        return statistics.median(
            p[key] - d[key] for p, d in zip(lat[proxy], base[proxy], strict=True)
        )

    def x_direct(proxy: str, key: str) -> float:
        return statistics.median(
            p[key] / d[key] for p, d in zip(lat[proxy], base[proxy], strict=True)
        )

    rows: list[dict[str, Any]] = []
    for name in NAMES:
        row: dict[str, Any] = {
            "placement": placement,
            "target": name,
            "rps_median": round(rps[name]),
            "x_haproxy": rps[name] / rps["haproxy"],
            "cpu_us_per_req": cpu_us[name],
            "cpu_x_haproxy": cpu_us[name] / cpu_us["haproxy"],
        }
        if name in PROXIES:
            row.update(
                {
                    "rate_50pct": round(rate[name]),
                    "added_p50_ms": added(name, "p50_ms"),
                    "added_p99_ms": added(name, "p99_ms"),
                    "added_p999_ms": added(name, "p999_ms"),
                    "p50_ms": med(lat[name], "p50_ms"),
                    "p99_ms": med(lat[name], "p99_ms"),
                    "direct_p99_ms": med(base[name], "p99_ms"),
                    # Ratios (the form): to direct in the same run, and to
                    # HAProxy's p99 (each proxy at half of its own capacity).
                    "p50_x_direct": x_direct(name, "p50_ms"),
                    "p99_x_direct": x_direct(name, "p99_ms"),
                    "p99_x_haproxy": med(lat[name], "p99_ms") / med(lat["haproxy"], "p99_ms"),
                    "added_service_p99_ms": added(name, "service_p99_ms"),
                    "send_lag_p99_ms": med(base[name] + lat[name], "send_lag_p99_ms"),
                    "gen_cpu_us_per_req": med(lat[name], "generator_cpu_us_per_req"),
                    "proxy_cpu_wait_ms": med(lat[name], "proxy_cpu_wait_ms"),
                    "load_1m": med(lat[name], "loadavg_1m"),
                    "errors": sum(s["errors"] for s in lat[name]),
                }
            )
        rows.append(row)
    meta = {
        "where": where,
        "realtime": realtime,
        "rt_limit": _rt_limit(),
        "loadavg_1m": {"start": load_before, "end": load_after},
        # Over the whole phase: how busy all CPUs were (every job on the machine) and
        # how much time the hypervisor took from this VM.
        "machine": machine,
        "samples_rps": thr,
        "samples_cpu_us_per_req": cpu,
        "samples_latency": {"proxy": lat, "direct": base},
    }
    return rows, meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_router")
    parser.add_argument("--quick", action="store_true", help="smoke-sized run")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument(
        "--placement",
        choices=("pinned", "shared", "both"),
        default="both",
        help="pinned: the proxy alone on one CPU, backend and client on another (the "
        "headline); shared: nothing pinned (everything competes for every CPU)",
    )
    parser.add_argument(
        "--generator",
        choices=("pacer", "python"),
        default="pacer",
        help="pacer: the C generator, 0.1 ms pacing, direct and proxy alternating in one "
        "run (the default); python: benchmarks.loadgen, 1 ms batches, one run each",
    )
    parser.add_argument(
        "--pairing",
        choices=PAIRINGS,
        default="windows",
        help="how pacer pairs direct and proxy in one run: alternating 100 ms windows "
        "(the default), or interleaved (both at the rate at once, every other request)",
    )
    parser.add_argument(
        "--poll-idle",
        action="store_true",
        help="keep the CPUs out of their halting idle states during the run (root; "
        "restored afterwards): a VM's halted CPU wakes late; alike for every target",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run the backend, proxies and clients SCHED_FIFO (root or CAP_SYS_NICE): "
        "keeps other jobs of a shared machine from preempting them, alike for every target",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    seconds = args.seconds or (1.5 if args.quick else 5.0)
    for tool in ("wrk", "haproxy", "taskset", "chrt"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench_router: {tool} is not installed; skipping", file=sys.stderr)
            return 1
    placements = ["shared", "pinned"] if args.placement == "both" else [args.placement]
    if "pinned" in placements and (os.cpu_count() or 1) < 2:
        print("bench_router: pinning needs 2 CPUs; measuring shared only", file=sys.stderr)
        placements = ["shared"]
    if args.realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except PermissionError:
            print("bench_router: --realtime needs root or CAP_SYS_NICE", file=sys.stderr)
            return 2
    generator = args.generator
    if generator == "pacer":
        try:
            pacer.build()
        except pacer.PacerUnavailable as exc:
            print(f"bench_router: {exc}; latency by benchmarks.loadgen", file=sys.stderr)
            generator = "python"
    lat_seconds = max(1.0, seconds * (0.8 if args.quick else 0.7))
    rows: list[dict[str, Any]] = []
    phases: dict[str, Any] = {}
    idle: dict[str, Any] = {"disabled_idle_states": {}}
    with ExitStack() as stack:
        if args.poll_idle:
            try:
                idle = stack.enter_context(poll_idle(os.sched_getaffinity(0)))
            except OSError as exc:  # not root, no cpuidle, a state the kernel refuses
                print(f"bench_router: --poll-idle: {exc}", file=sys.stderr)
                return 2
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        urls = stack.enter_context(_environment(work))
        for placement in placements:
            got, phases[placement] = _phase(
                urls,
                placement,
                realtime=args.realtime,
                runs=runs,
                seconds=seconds,
                lat_seconds=lat_seconds,
                generator=generator,
                pairing=args.pairing,
            )
            rows.extend(got)
    meta = {
        "runs": runs,
        "seconds": seconds,
        "latency_seconds": lat_seconds,
        "connections": CONNECTIONS,
        "cpus": os.cpu_count(),
        "poll_idle": idle,
        "pairing": args.pairing if generator == "pacer" else "sequential runs",
        "headline": "pinned" if "pinned" in placements else "shared",
        "throughput_tool": "wrk -t2 -c32",
        "latency_tool": (
            f"pacer (benchmarks/pacer.c: open loop, fixed rate, 0.1 ms pacing, direct and "
            f"proxy in one run ({args.pairing}), latency from the due time)"
            if generator == "pacer"
            else "benchmarks.loadgen (open loop, fixed rate, 1 ms send batches, "
            "latency from the due time; direct, then proxy)"
        ),
        "phases": phases,
        "cpu_note": "CPU time of the one process serving each target (direct: the backend) "
        "per request during the wrk runs; less sensitive to a shared machine than req/s",
        "targets": {
            "kiln_throughput_vs_haproxy": ">= 0.8",
            "kiln_added_p99_ms_at_half_capacity": "<= 1.0",
        },
    }
    report("bench_router", rows, meta)
    for placement in placements:
        by = {r["target"]: r for r in rows if r["placement"] == placement}
        kiln, hap = by["kiln"], by["haproxy"]
        lag = max(kiln["send_lag_p99_ms"], hap["send_lag_p99_ms"])
        print(
            f"{placement}{' realtime' if args.realtime else ''}"
            f"{' poll-idle' if args.poll_idle else ''}: kiln throughput "
            f"{kiln['x_haproxy']:.2f}x HAProxy, CPU per request {kiln['cpu_us_per_req']:.1f} us "
            f"vs {hap['cpu_us_per_req']:.1f} us; added p50/p99/p99.9 at 50% load: kiln "
            f"{kiln['added_p50_ms']:.2f}/{kiln['added_p99_ms']:.2f}/"
            f"{kiln['added_p999_ms']:.2f} ms @ {kiln['rate_50pct']}/s, HAProxy "
            f"{hap['added_p50_ms']:.2f}/{hap['added_p99_ms']:.2f}/{hap['added_p999_ms']:.2f} ms "
            f"@ {hap['rate_50pct']}/s (generator send lag p99 {lag:.2f} ms, "
            f"load {phases[placement]['loadavg_1m']['end']:.1f}, CPUs "
            f"{phases[placement]['machine']['busy_pct']:.0f}% busy, steal "
            f"{phases[placement]['machine']['steal_pct']:.1f}%)"
        )
        batch = 0.1 if generator == "pacer" else 1.0
        if lag > 2.5 * batch:
            print(
                f"warning ({placement}): the load generator itself sent requests up to "
                f"{lag:.1f} ms late (its {batch:g} ms pacing accounts for about {batch:g}-"
                f"{2 * batch:g} ms): the machine is too busy for the latency figures to be "
                "the proxies' alone"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
