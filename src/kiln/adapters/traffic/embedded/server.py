"""The ``kiln router`` process: data listener, admin socket, persisted table.

Start-up order matters for "a restarted router serves at once": the persisted
table is loaded and installed *before* the data listener opens, so the first
request after a restart is routed by the last applied table, with no controller
involved. Every apply writes the table to ``state_file`` with
``kiln.fsio.write_atomic`` (in a worker thread, so the event loop keeps serving)
and only then swaps it in: a table that was answered 200 survives a crash.

A table's ``listeners`` (the blue/green preview port) are opened on the same
bind host by ``listeners.PortListeners``: their sockets are bound before the
table is persisted, so a port that cannot be bound refuses the apply (409 with
the port named) instead of persisting a table the router cannot serve. A
restarted router reopens them from the persisted table after the main listener;
one that cannot be bound then is reported on stderr and in ``/health``.

Once listening, one JSON line goes to stdout (``{"event": "ready", "listen":
"host:port", ...}``) so a supervisor learns the port it asked the kernel for.
SIGTERM/SIGINT drain: stop accepting, close idle keep-alive clients, let
in-flight requests finish (bounded by ``drain_timeout``), exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.exposition import generate_latest

from kiln.adapters.traffic.embedded.admin import error_response, json_response, serve_admin
from kiln.adapters.traffic.embedded.listeners import PortListeners
from kiln.adapters.traffic.embedded.proxy import ClientConnection, DataPlane, idle_sweeper
from kiln.adapters.traffic.embedded.stats import StatsCollector, StatsView, registry_for
from kiln.adapters.traffic.embedded.trace import maybe_install
from kiln.core.traffic.metrics import BackendHealth, DataPlaneHealth, RouterMetrics
from kiln.core.traffic.selection import compile_plan
from kiln.core.traffic.table import RouteTable, from_json, must_install
from kiln.errors import ConfigError, KilnError
from kiln.fsio import write_atomic


@dataclass(frozen=True)
class RouterConfig:
    listen_host: str
    listen_port: int
    admin_socket: Path
    state_file: Path
    metrics_host: str | None = None
    metrics_port: int | None = None
    drain_timeout: float = 30.0
    """Long enough for ordinary requests to finish; a stuck one must not block forever."""


def parse_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"{what} {text!r} is not host:port", hint="e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def load_table(path: Path) -> RouteTable | None:
    """The last applied table, or None if none was ever applied. A file that exists
    but does not parse is an error: it was written atomically, so it was tampered
    with or written by something else."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read route state {path}: {exc.strerror}") from exc
    try:
        return from_json(data)
    except KilnError as exc:
        raise ConfigError(
            f"route state {path} is not a valid route table: {exc.message}",
            hint="move the file away to start with no table, then apply one",
        ) from exc


class RouterServer:
    def __init__(self, config: RouterConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.dp = DataPlane(loop)
        self.listeners = PortListeners(self.dp, config.listen_host)
        self.table: RouteTable | None = None
        self.apply_lock = asyncio.Lock()
        self.data_server: asyncio.AbstractServer | None = None
        self.admin_server: asyncio.AbstractServer | None = None
        self.metrics_server: asyncio.AbstractServer | None = None
        self.stopped = asyncio.Event()
        self.registry = registry_for(StatsCollector(self._collect))

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> str:
        table = load_table(self.config.state_file)
        if table is not None:
            self._install(table)
        self.admin_server = await serve_admin(self.config.admin_socket, self._admin)
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.listen_host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.listen_host, self.config.listen_port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot listen on {self.config.listen_host}:{self.config.listen_port}: "
                f"{exc.strerror}"
            ) from exc
        self.data_server = await self.loop.create_server(
            lambda: ClientConnection(self.dp), sock=sock, backlog=1024
        )
        if self.config.metrics_host is not None and self.config.metrics_port is not None:
            self.metrics_server = await asyncio.start_server(
                self._metrics_http, self.config.metrics_host, self.config.metrics_port
            )
        if table is not None:
            await self.listeners.reopen(table)
        idle_sweeper(self.dp)
        host, port = sock.getsockname()[:2]
        return f"{host}:{port}"

    async def drain(self) -> dict[str, int]:
        """Stop accepting, finish in-flight requests, close clients."""
        dp = self.dp
        dp.draining = True
        if self.data_server is not None:
            self.data_server.close()
        self.listeners.close_all()
        dp.close_idle_clients()
        deadline = self.loop.time() + self.config.drain_timeout
        while dp.in_flight > 0 and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        left = dp.in_flight
        for conn in list(dp.connections):
            conn.close()
        dp.flush_out()
        return {"unfinished": left}

    async def stop(self) -> None:
        await self.drain()
        for server in (self.admin_server, self.metrics_server):
            if server is not None:
                server.close()
        with contextlib.suppress(FileNotFoundError):
            self.config.admin_socket.unlink()
        self.stopped.set()

    # -- tables -----------------------------------------------------------------------
    def _install(self, table: RouteTable) -> None:
        self.dp.install(compile_plan(table))
        self.table = table
        self.listeners.converge(table)

    async def apply(self, data: bytes) -> int:
        table = from_json(data)
        async with self.apply_lock:
            # Bind first: a port that cannot be bound refuses the table before it is
            # persisted (the same table again retries a port that failed at start).
            fresh = must_install(self.table, table)
            bound = self.listeners.bind(table)
            if not fresh:
                await self.listeners.start(table, bound)
                return table.generation
            blob = table.to_json()
            try:
                await self.loop.run_in_executor(
                    None, lambda: write_atomic(self.config.state_file, blob, mode=0o600)
                )
            except BaseException:
                for sock in bound.values():
                    sock.close()
                raise
            self._install(table)
            await self.listeners.start(table, bound)
        return table.generation

    # -- views ------------------------------------------------------------------------------
    def _collect(self) -> StatsView:
        dp = self.dp
        return StatsView(
            environment=dp.environment,
            generation=self.table.generation if self.table else None,
            releases=list(dp.stats.values()),
            backends=[(st.release, st.address, st.up) for st in dp.states.values()],
            connections=len(dp.connections),
            mirrors_dropped=dp.mirrors_dropped,
        )

    def metrics(self) -> RouterMetrics:
        return RouterMetrics(
            generation=self.table.generation if self.table else None,
            releases=tuple(st.snapshot() for _, st in sorted(self.dp.stats.items())),
        )

    def health(self) -> DataPlaneHealth:
        dp = self.dp
        serving = self.table is not None and not dp.draining
        detail = "draining" if dp.draining else "serving" if serving else "no route table yet"
        extra = self.listeners.describe()
        if extra:
            detail += f" ({extra})"
        return DataPlaneHealth(
            serving=serving,
            generation=self.table.generation if self.table else None,
            detail=detail,
            backends=tuple(
                BackendHealth(st.release, st.address, st.up, st.failures)
                for st in dp.states.values()
            ),
        )

    async def _admin(self, method: str, target: str, body: bytes) -> tuple[int, str, bytes]:
        try:
            if target == "/table":
                if method == "GET":
                    if self.table is None:
                        return json_response(404, {"error": {"message": "no table applied"}})
                    return 200, "application/json", self.table.to_json()
                if method == "PUT":
                    return json_response(200, {"generation": await self.apply(body)})
            elif target == "/metrics" and method == "GET":
                return 200, "text/plain; version=0.0.4", generate_latest(self.registry)
            elif target == "/metrics.json" and method == "GET":
                return json_response(200, self.metrics().to_dict())
            elif target == "/health" and method == "GET":
                return json_response(200, self.health().to_dict())
            elif target == "/drain" and method == "POST":
                return json_response(200, await self.drain())
            else:
                return json_response(404, {"error": {"message": f"no such endpoint {target}"}})
            return json_response(405, {"error": {"message": f"{method} not allowed"}})
        except KilnError as exc:
            return error_response(exc)
        except OSError as exc:
            return json_response(500, {"error": {"message": f"cannot persist table: {exc}"}})

    async def _metrics_http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """A minimal TCP listener for Prometheus to scrape ``/metrics`` (optional)."""
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            body = generate_latest(self.registry)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass
        finally:
            writer.close()


def run(config: RouterConfig) -> int:
    """Run the router until SIGTERM/SIGINT; returns the process exit code."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a locked dependency
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_main(config))


def settle_heap() -> int:
    """Called once serving starts: everything allocated so far (modules, the table, the
    listeners) lives as long as the process, so move it out of the collector's view;
    later collections then walk only what requests allocate. Returns how many
    objects were frozen.

    Measured (docs/data-plane.md, "Where the tail comes from"): with keep-alive
    clients the router allocates almost nothing that survives a request, so
    generation-0 collections happen only when connections open in bursts."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def _main(config: RouterConfig) -> int:
    loop = asyncio.get_running_loop()
    server = RouterServer(config, loop)
    address = await server.start()
    frozen = settle_heap()
    # Opt-in stall tracing (KILN_ROUTER_TRACE=file); nothing is hooked without it.
    traced = maybe_install(server.dp, dict(os.environ))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: server.dp.spawn(server.stop()))
    ready = {
        "event": "ready",
        "listen": address,
        "admin_socket": str(config.admin_socket),
        "generation": server.table.generation if server.table else None,
        # "uvloop" unless it could not be imported (then asyncio's own loop, ~2x slower).
        "loop": type(loop).__module__.split(".")[0],
        "gc_frozen": frozen,
        "trace": traced is not None,
    }
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    await server.stopped.wait()
    return 0
