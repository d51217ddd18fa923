"""The embedded router's CPU per proxied request, against a bare proxy (the floor).

Timing on a shared machine is noise, so the headline counts **instructions**:
``valgrind --tool=callgrind`` counts the user-space instructions a process runs
whatever else the machine does, the same from one run to the next within half a
percent. Every target runs under callgrind with instrumentation off
during start-up; a fixed-count client (32 keep-alive HTTP/1.1 connections, like
wrk's requests) warms them up, then the counters are zeroed, exactly N requests
are proxied, and the counters dumped: instructions / N.

Targets, one release with one backend (a static HAProxy frontend answering
``200 ok``, ``bench_router.start_static_backend``):

- ``floor``: a bare uvloop + httptools forwarding proxy written below (no
  features: one upstream connection per client connection, both directions
  parsed by llhttp with a single "message complete" callback, bytes relayed as
  received). Issue 6 measured such a proxy at about HAProxy's throughput: it is
  what any Python proxy on these libraries pays;
- ``kiln``: ``kiln router`` (``python -m kiln router``) with the same table as
  ``bench_router``.

Beside it, without valgrind, the **CPU µs per request** (utime + stime of the
proxy's process from /proc over a ``wrk -t2 -c32`` run, median of ``--runs``
interleaved runs, in ABBA order): the real cost, noisy, for scale. User and
system time are also shown apart: the Python hot path moves the user time; the
system time is the reads and writes, which the floor makes too.

``--baseline-src DIR`` adds a third target, ``kiln-baseline``: the same router
imported from another source tree (``git archive main src | tar -x -C DIR``), so a
change is measured before and after in one run, with ratios.

Each run's callgrind dump is kept in ``.bench/`` (paths in the JSON):
``callgrind_annotate --inclusive=yes FILE`` shows where the instructions go.

    .venv/bin/python -m benchmarks.bench_router_cpu [--quick] [--requests N] [--runs R]
        [--seconds S] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httptools

from benchmarks.bench_router import start_static_backend
from benchmarks.common import report
from kiln.core.traffic.table import Backend, Release, RouteTable

CONNECTIONS = 32
ROOT = Path(__file__).resolve().parents[1]  # where ``-m benchmarks...`` imports from
TARGETS = ("floor", "kiln")
WARMUP = 300
MEASURED = "desc: Trigger: dump measured"  # the header of the dump taken after the run


# -- the floor: a bare forwarding proxy -----------------------------------------------
class _Done:
    """A parser's only callback: counts whole messages."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = 0

    def on_message_complete(self) -> None:
        self.done += 1


class _FloorUpstream(asyncio.Protocol):
    def __init__(self, client: _FloorClient) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(_Done())
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)
        client = self.client.transport
        if client is not None:
            client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()


class _FloorClient(asyncio.Protocol):
    """Relays the client's bytes to its own upstream connection, opened on the first
    request; both directions go through llhttp, nothing is rewritten."""

    def __init__(self, loop: asyncio.AbstractEventLoop, backend: tuple[str, int]) -> None:
        self.loop = loop
        self.backend = backend
        self.parser = httptools.HttpRequestParser(_Done())
        self.transport: asyncio.Transport | None = None
        self.upstream: _FloorUpstream | None = None
        self.pending: list[bytes] = []
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(data)
            return
        self.pending.append(data)
        if upstream is None:
            self.upstream = upstream = _FloorUpstream(self)
            # Kept until done: the loop holds tasks weakly.
            self.connecting = self.loop.create_task(self._connect(upstream))

    async def _connect(self, upstream: _FloorUpstream) -> None:
        transport, _ = await self.loop.create_connection(lambda: upstream, *self.backend)
        transport.write(b"".join(self.pending))
        self.pending = []

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


def serve_floor(backend_port: int) -> None:
    """Run the floor proxy (uvloop) on a free loopback port; print its ready line."""
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _FloorClient(loop, ("127.0.0.1", backend_port)), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"event": "ready", "listen": f"127.0.0.1:{port}"}), flush=True)
        await asyncio.Event().wait()

    uvloop.run(serve())


# -- a fixed-count client --------------------------------------------------------------
def drive(
    port: int, warmup: int, requests: int, between: Callable[[], None], after: Callable[[], None]
) -> None:
    """``warmup`` then exactly ``requests`` keep-alive GETs over CONNECTIONS
    connections (each waits for its answer before the next request, like wrk);
    ``between`` runs once the warm-up is answered, ``after`` once the run is."""
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    async def run(
        streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], count: int
    ) -> None:
        left = [count]

        async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            done = _Done()
            parser = httptools.HttpResponseParser(done)
            while left[0] > 0:
                left[0] -= 1
                writer.write(request)
                want = done.done + 1
                while done.done < want:
                    data = await reader.read(65536)
                    if not data:
                        raise ConnectionError("the proxy closed a keep-alive connection")
                    parser.feed_data(data)
                if parser.get_status_code() != 200:
                    raise RuntimeError(f"answer {parser.get_status_code()}, not 200")

        await asyncio.gather(*(one(r, w) for r, w in streams))

    async def main() -> None:
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(CONNECTIONS)]
        await run(streams, warmup)
        between()
        await run(streams, requests)
        after()
        for _, writer in streams:
            writer.close()

    asyncio.run(main())


# -- the targets ------------------------------------------------------------------------
@contextmanager
def _target(
    name: str, work: Path, backend_port: int, prefix: list[str], src: Path | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Start ``name`` (under ``prefix``, e.g. valgrind; kiln imported from ``src``
    when given); yield its port and process."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    if name == "floor":
        command = [sys.executable, "-m", "benchmarks.bench_router_cpu", "--serve-floor"]
        command.append(str(backend_port))
    else:
        state = work / f"{name}.json"
        table = RouteTable(1, "bench", (Release("r", 100, (Backend("127.0.0.1", backend_port),)),))
        state.write_bytes(table.to_json())
        command = [sys.executable, "-m", "kiln", "router", "--listen", "127.0.0.1:0"]
        command += ["--admin-socket", str(work / f"{name}.sock"), "--state-file", str(state)]
    proc = subprocess.Popen([*prefix, *command], stdout=subprocess.PIPE, cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        yield int(ready["listen"].rsplit(":", 1)[1]), proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _summary(path: Path) -> int:
    """The instructions a callgrind dump counted (its ``summary:`` line)."""
    match = re.search(r"^summary:\s+(\d+)", path.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no summary line in {path}")
    return int(match.group(1))


def instructions(
    name: str, work: Path, backend_port: int, requests: int, src: Path | None = None
) -> tuple[float, Path]:
    """Instructions per request of ``name`` under callgrind, and the dump file."""
    out = work / f"callgrind.{name}"
    prefix = ["valgrind", "-q", "--tool=callgrind", "--instr-atstart=no"]
    prefix.append(f"--callgrind-out-file={out}")
    with _target(name, work, backend_port, prefix, src) as (port, proc):
        _control(proc.pid, "--instr=on")
        drive(
            port,
            WARMUP,
            requests,
            between=lambda: _control(proc.pid, "--zero"),
            after=lambda: _control(proc.pid, "--dump=measured"),  # MEASURED
        )
    dumps = sorted(work.glob(f"callgrind.{name}.*"), key=lambda p: p.stat().st_mtime)
    measured = [p for p in dumps if MEASURED in p.read_text()[:2000]]
    if not measured:
        raise RuntimeError(f"callgrind wrote no dump named 'measured' in {work}")
    dump = measured[-1]
    return _summary(dump) / requests, dump


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_per_request(port: int, pid: int, seconds: float) -> tuple[float, float]:
    """(user, system) CPU µs per request of ``pid`` under ``wrk -t2 -c32`` for
    ``seconds``."""
    user, system = _cpu_seconds(pid)
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{CONNECTIONS}",
            f"-d{max(1, round(seconds))}s",
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    user_after, system_after = _cpu_seconds(pid)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return (user_after - user) / total * 1e6, (system_after - system) / total * 1e6


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-floor"]:
        serve_floor(int(argv[1]))
        return 0
    parser = argparse.ArgumentParser(prog="bench_router_cpu")
    parser.add_argument("--quick", action="store_true", help="smoke-sized run")
    parser.add_argument("--requests", type=int, default=None, help="requests under callgrind")
    parser.add_argument("--runs", type=int, default=None, help="wrk runs per target")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per wrk run")
    parser.add_argument("--keep", type=Path, default=Path(".bench"), help="where dumps are kept")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="also measure kiln imported from this source tree (e.g. `git archive main src`)",
    )
    args = parser.parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            print(f"bench_router_cpu: {tool} is not installed; skipping")
            return 0
    requests = args.requests or (2000 if args.quick else 10000)
    runs = args.runs or (1 if args.quick else 5)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    # name -> where kiln is imported from (None: this checkout)
    targets: dict[str, Path | None] = {"floor": None}
    if args.baseline_src is not None:
        targets["kiln-baseline"] = args.baseline_src.resolve()
    targets["kiln"] = None
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-router-cpu-") as tmp:
        work = Path(tmp)
        backend_port, backend = start_static_backend(work)
        try:
            ir: dict[str, float] = {}
            for name, src in targets.items():
                ir[name], dump = instructions(name, work, backend_port, requests, src)
                kept = args.keep / f"callgrind.{name}.out"
                kept.parent.mkdir(exist_ok=True)
                shutil.copyfile(dump, kept)
            cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
            with ExitStack() as stack:
                started = {
                    name: stack.enter_context(_target(name, work, backend_port, [], src))
                    for name, src in targets.items()
                }
                order = list(started)
                for run in range(runs):  # interleaved, ABBA: no target always goes first
                    for name in order if run % 2 == 0 else order[::-1]:
                        port, proc = started[name]
                        cpu[name].append(cpu_per_request(port, proc.pid, seconds))
        finally:
            backend.kill()
            backend.wait(timeout=10)
    total = {name: statistics.median(u + s for u, s in cpu[name]) for name in targets}
    user = {name: statistics.median(u for u, _ in cpu[name]) for name in targets}
    for name in targets:
        row: dict[str, object] = {
            "target": name,
            "instructions_per_request": round(ir[name]),
            "ratio_to_floor": ir[name] / ir["floor"],
            "cpu_us_per_request": total[name],
            "user_us": user[name],
            "system_us": statistics.median(s for _, s in cpu[name]),
            "cpu_ratio_to_floor": total[name] / total["floor"],
        }
        if "kiln-baseline" in targets and name != "floor":
            row["instructions_vs_baseline"] = ir[name] / ir["kiln-baseline"]
            row["user_vs_baseline"] = user[name] / user["kiln-baseline"]
            row["cpu_vs_baseline"] = total[name] / total["kiln-baseline"]
        rows.append(row)
    report(
        "router_cpu",
        rows,
        {
            "requests_under_callgrind": requests,
            "warmup": WARMUP,
            "connections": CONNECTIONS,
            "wrk_runs": runs,
            "wrk_seconds": seconds,
            "cpu_samples_us": cpu,
            "baseline_src": str(args.baseline_src) if args.baseline_src else None,
            "dumps": [str(args.keep / f"callgrind.{name}.out") for name in targets],
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
