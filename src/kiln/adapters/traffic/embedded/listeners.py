"""The embedded router's extra listeners: "port P serves release R only".

A route table's ``listeners`` (the blue/green preview port) each become a
listening socket on the router's bind host. Connections accepted there read the
routes of their ``PortListener``, not the data plane's: one slot, the listener's
release, sharing that release's backends, pools and counters with the main
listener (so the metrics count preview requests under the release). Retries stay
inside the release.

The sockets are bound *before* a table is persisted and installed
(``PortListeners.bind``): a port that cannot be bound refuses the whole apply,
so the router never persists a table it cannot serve. A listener the new table
no longer names stops accepting at once; its idle connections close now and
busy ones after their response (``draining``), so in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from kiln.adapters.traffic.embedded.proxy import ClientConnection, DataPlane
from kiln.adapters.traffic.embedded.routing import Routes
from kiln.core.traffic.selection import listener_plan
from kiln.core.traffic.table import RouteTable
from kiln.errors import Refused


class PortListener:
    """One open extra listener: what its connections route by."""

    __slots__ = ("draining", "port", "release", "routes", "server")

    def __init__(self, port: int, release: str) -> None:
        self.port = port
        self.release = release
        self.routes: Routes | None = None
        self.draining = False
        self.server: asyncio.AbstractServer | None = None


class PortListeners:
    """The extra listeners of one router process, kept equal to the served table's."""

    def __init__(self, dp: DataPlane, host: str) -> None:
        self.dp = dp
        self.host = host
        self.open: dict[int, PortListener] = {}
        self.errors: dict[int, str] = {}  # port -> why it could not be opened at start

    def bind(self, table: RouteTable) -> dict[int, socket.socket]:
        """Bound sockets for the table's ports that are not open yet; raises ``Refused``
        naming the port (and closes what it bound) if one cannot be bound."""
        bound: dict[int, socket.socket] = {}
        try:
            for item in table.listeners:
                if item.port not in self.open:
                    bound[item.port] = self._bind_one(item.port, item.release)
        except Refused:
            for sock in bound.values():
                sock.close()
            raise
        return bound

    def _bind_one(self, port: int, release: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            raise Refused(
                f"cannot open the listener on {self.host}:{port} for release {release}: "
                f"{exc.strerror}",
                hint="another process holds the port: stop it, or choose another "
                "strategy.blueGreen.previewPort",
            ) from exc
        return sock

    def converge(self, table: RouteTable | None) -> None:
        """Point open listeners at ``table``'s routes and close those it no longer names.
        Call right after the data plane installed ``table``."""
        wanted = {item.port: item.release for item in table.listeners} if table else {}
        routes = self.dp.routes
        for port, listener in list(self.open.items()):
            release = wanted.get(port)
            if release is None or routes is None or table is None:
                self._close(listener)
                continue
            listener.release = release
            listener.routes = Routes(
                listener_plan(table, release), {release: routes.targets[release]}
            )
        for port in list(self.errors):
            if port not in wanted:
                del self.errors[port]

    async def start(self, table: RouteTable, bound: dict[int, socket.socket]) -> None:
        """Serve on the sockets ``bind`` returned (after ``converge`` of the same table)."""
        routes = self.dp.routes
        for item in table.listeners:
            sock = bound.get(item.port)
            if sock is None or routes is None:
                continue
            listener = PortListener(item.port, item.release)
            listener.routes = Routes(
                listener_plan(table, item.release), {item.release: routes.targets[item.release]}
            )
            listener.server = await self.dp.loop.create_server(
                lambda lst=listener: ClientConnection(self.dp, lst),  # type: ignore[misc]
                sock=sock,
                backlog=1024,
            )
            self.open[item.port] = listener
            self.errors.pop(item.port, None)

    async def reopen(self, table: RouteTable) -> None:
        """At start-up: open the persisted table's listeners; a port that cannot be bound
        is reported (stderr, health) and the main listener serves regardless."""
        bound: dict[int, socket.socket] = {}
        for item in table.listeners:
            try:
                bound[item.port] = self._bind_one(item.port, item.release)
            except Refused as exc:
                self.errors[item.port] = exc.message
                sys.stderr.write(f"kiln router: {exc.message}\n")
        await self.start(table, bound)

    def close_all(self) -> None:
        for listener in list(self.open.values()):
            self._close(listener)

    def _close(self, listener: PortListener) -> None:
        listener.draining = True
        if listener.server is not None:
            listener.server.close()
        self.open.pop(listener.port, None)
        for conn in list(self.dp.connections):
            if conn.source is listener and conn.active is None:
                conn.close()

    def describe(self) -> str:
        """A few words for the health detail: open ports and those that failed."""
        parts = [f"port {port} serves {lst.release}" for port, lst in sorted(self.open.items())]
        parts += [f"port {port} not open: {why}" for port, why in sorted(self.errors.items())]
        return "; ".join(parts)
