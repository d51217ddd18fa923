"""The data plane: an HTTP/1.1 reverse proxy at the protocol level.

Each client connection is an ``asyncio.Protocol`` feeding an httptools request
parser; each upstream connection is a protocol feeding a response parser. No
streams, no tasks per request: the callbacks move bytes straight from one
transport to the other. A task is created only to open a new upstream
connection, which keep-alive pools make rare.

Per request (``ClientConnection._on_request``): header rules, the sticky cookie,
then one tuple index into the precomputed weighted slots (``core.traffic
.selection``), a round-robin pick among the release's healthy backends, and the
request head rewritten once (hop-by-hop headers out, X-Forwarded-* in).

The route swap is one reference assignment (``DataPlane.install``): requests
already dispatched hold their backend and finish there; backends absent from the
new table are *retired*: their idle connections close now, busy ones close when
their response ends.

Retries: an idempotent request with no body whose upstream attempt fails before
any response byte (refused, reset, closed keep-alive race) is sent to another
backend, preferably of the same release, up to ``exchange.MAX_ATTEMPTS``. Passive health
ejects a backend after ``EJECT_AFTER`` consecutive failures and probes it back
with a TCP connect every ``PROBE_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import Callable, Coroutine
from time import monotonic
from typing import Any, Protocol

import httptools

from kiln.adapters.traffic.embedded.exchange import REASONS, Exchange
from kiln.adapters.traffic.embedded.routing import (
    EMPTY_ROUTES,
    HOP_BY_HOP,
    ONE_MESSAGE,
    BackendState,
    Marks,
    Routes,
    Target,
)
from kiln.adapters.traffic.embedded.stats import ReleaseStats
from kiln.adapters.traffic.embedded.upstream import Attached, Mirrored, UpstreamConnection
from kiln.core.traffic.selection import Plan, parse_cookie_header

# Idempotent methods (RFC 9110 §9.2.2) may be retried when no body was sent.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
EJECT_AFTER = 2
PROBE_INTERVAL = 0.5
CONNECT_TIMEOUT = 3.0
MAX_MIRRORS_IN_FLIGHT = 64
CLIENT_IDLE_TIMEOUT = 75.0


class DataPlane:
    """Shared state of the router process: the served routes, pools, counters."""

    def __init__(self, loop: asyncio.AbstractEventLoop, environment: str = "") -> None:
        self.loop = loop
        self.environment = environment
        self.routes: Routes | None = None
        self.counter = 0
        self.states: dict[str, BackendState] = {}
        self.stats: dict[str, ReleaseStats] = {}
        self.connections: set[ClientConnection] = set()
        self.in_flight = 0
        self.draining = False
        self.mirrors_in_flight = 0
        self.mirrors_dropped = 0
        # A coarse clock for idle-client bookkeeping, advanced by ``idle_sweeper``:
        # per request a read of this field instead of a clock call.
        self.now = monotonic()
        # Writes and closes queued by ``send``, done in order by ``flush_out``.
        self.outbox: list[tuple[asyncio.Transport, bytes | None]] = []
        self._flush_out = self.flush_out  # one bound method, not one per batch
        # The loop holds tasks weakly; keep connect/probe tasks alive until done.
        self.tasks: set[asyncio.Task[None]] = set()
        # Told (backend address, idle pooled) when a new upstream connection is
        # opened; set only by the opt-in tracing of ``trace.py``.
        self.on_connect: Callable[[str, int], None] | None = None

    # -- deferred sends ---------------------------------------------------------------
    def send(self, transport: asyncio.Transport, data: bytes | None) -> None:
        """Queue ``data`` for ``transport`` (None: close it) until the loop has run
        every callback of this poll: all sends then go out together, in order.

        Sending at once from each callback woke a peer (client or backend) in the
        middle of the batch, and the kernel would often switch to it there: about one
        involuntary context switch per request. Sent at the end of the batch, the
        router keeps the CPU through its batch (about a quarter less CPU per request
        under load, measured with ``benchmarks/bench_router.py``)."""
        outbox = self.outbox
        if not outbox:
            self.loop.call_soon(self._flush_out)
        outbox.append((transport, data))

    def flush_out(self) -> None:
        outbox = self.outbox
        if not outbox:
            return
        self.outbox = []
        for transport, data in outbox:
            if data is None:
                transport.close()
            elif not transport.is_closing():  # the peer went away meanwhile
                transport.write(data)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- table swap ---------------------------------------------------------------
    def install(self, plan: Plan) -> None:
        table = plan.table
        self.environment = table.environment
        new_states: dict[str, BackendState] = {}
        targets: dict[str, Target] = {}
        max_age = table.sticky.max_age if table.sticky else 0
        for rel in table.releases:
            states: list[BackendState] = []
            for backend in rel.backends:
                st = self.states.get(backend.address)
                if st is None or st.retired:
                    st = BackendState(backend.host, backend.port, rel.name)
                st.release = rel.name
                new_states[backend.address] = st
                states.append(st)
            stats = self.stats.get(rel.name)
            if stats is None:
                stats = self.stats[rel.name] = ReleaseStats(rel.name)
            cookie = b""
            if plan.sticky_cookie:
                cookie = (
                    f"set-cookie: {plan.sticky_cookie}={rel.name}; Path=/; Max-Age={max_age}; "
                    "HttpOnly; SameSite=Lax\r\n"
                ).encode("latin-1")
            targets[rel.name] = Target(rel.name, tuple(states), stats, cookie)
        removed = [st for addr, st in self.states.items() if addr not in new_states]
        self.states = new_states
        self.routes = Routes(plan, targets)  # the atomic swap
        for st in removed:
            st.retire()

    # -- passive health -----------------------------------------------------------
    def failed(self, st: BackendState) -> None:
        st.failures += 1
        if st.failures >= EJECT_AFTER and st.up:
            st.up = False
            self._schedule_probe(st)

    def _schedule_probe(self, st: BackendState) -> None:
        if st.probing or st.retired:
            return
        st.probing = True
        self.loop.call_later(PROBE_INTERVAL, self._probe_now, st)

    def _probe_now(self, st: BackendState) -> None:
        self.spawn(self._probe(st))

    async def _probe(self, st: BackendState) -> None:
        st.probing = False
        if st.retired or st.up:
            return
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(st.host, st.port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            self._schedule_probe(st)
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        st.up = True
        st.failures = 0

    # -- upstream connections -------------------------------------------------------
    def connect(self, st: BackendState, exchange: Attached) -> None:
        conn = st.take_idle()
        if conn is not None:
            conn.attach(exchange)
            return
        if self.on_connect is not None:
            self.on_connect(st.address, len(st.idle))
        self.spawn(self._connect(st, exchange))

    async def _connect(self, st: BackendState, exchange: Attached) -> None:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: UpstreamConnection(self, st), st.host, st.port),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError):
            exchange.upstream_failed(None, st)
            return
        conn.attach(exchange)

    # -- mirroring --------------------------------------------------------------------
    def mirror(self, routes: Routes, head: bytes) -> None:
        target = routes.mirror
        if target is None:
            return
        if self.mirrors_in_flight >= MAX_MIRRORS_IN_FLIGHT:
            self.mirrors_dropped += 1
            return
        st = target.pick(None)
        if st is None:
            return
        target.stats.mirrored += 1
        self.mirrors_in_flight += 1
        self.connect(st, Mirrored(self, target.stats, head))

    # -- draining ---------------------------------------------------------------------
    def close_idle_clients(self) -> None:
        for conn in list(self.connections):
            if conn.active is None:
                conn.close()

    def sweep_idle(self, now: float) -> None:
        for conn in list(self.connections):
            if conn.active is None and now - conn.last_activity > CLIENT_IDLE_TIMEOUT:
                conn.close()


def _match_header_rule(routes: Routes, lines: list[bytes]) -> Target | None:
    """First forwarded header matching a rule (only runs when the table has rules)."""
    for line in lines:
        name, _, value = line[:-2].partition(b":")
        by_value = routes.header_rules.get(name.strip().lower())
        if by_value is not None:
            target = by_value.get(value.strip())
            if target is not None:
                return target
    return None


_KEEP, _DROP, _CONNECTION, _TRANSFER_ENCODING, _FORWARDED_FOR = range(5)
# Request headers that need more than forwarding; anything else named proxy-* is dropped.
_REQUEST_HEADERS = {
    **dict.fromkeys(HOP_BY_HOP, _DROP),
    b"connection": _CONNECTION,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"x-forwarded-for": _FORWARDED_FOR,
    b"x-forwarded-proto": _DROP,
    b"x-forwarded-host": _DROP,
    b"host": _KEEP,
    b"cookie": _KEEP,
    b"content-length": _KEEP,
}


# What the fast path leaves to the full parser: hop-by-hop and framing headers,
# X-Forwarded-* (appended to or replaced), and anything after the blank line that
# ends the head (pipelined requests). One regex with a literal first byte: much
# cheaper than one ``in`` or ``find`` per name (each such call costs about as
# much as half the search, ``benchmarks/bench_router_cpu.py``).
_REWRITTEN_REQUEST = re.compile(
    rb"\n(?:connection|content-length|keep-alive|proxy-|te:|trailer|transfer-encoding"
    rb"|upgrade|x-forwarded-|\r\n.)",
    re.DOTALL,
)


class RouteSource(Protocol):
    """Where a connection reads its routes: the data plane (the main listener) or an
    extra listener that serves one release (``listeners.PortListener``)."""

    routes: Routes | None
    draining: bool


class ClientConnection(asyncio.Protocol):
    """One downstream connection: parses requests, routes them one at a time (pipelined
    requests wait their turn), and writes the responses back in order."""

    def __init__(self, dp: DataPlane, source: RouteSource | None = None) -> None:
        self.dp = dp
        self.source: RouteSource = dp if source is None else source
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # The fast path (``_fast_request``) validates with a second parser that has
        # no per-header callbacks; ``mid`` is True while ``parser`` is inside a message.
        self.checks = Marks()
        self.checker = httptools.HttpRequestParser(self.checks)
        self.mid = False
        # What the fast path appends to a head (X-Forwarded-*, the blank line), kept
        # with the Host line it was built for (from its "\n" to its "\r"): a
        # keep-alive client repeats its Host line, so most requests reuse the tail.
        self.host_line = b""
        self.host_tail = b""
        self.open = False
        self.http11 = True
        self.url = b""
        self.lines: list[bytes] = []
        self.drop: set[bytes] | None = None
        self.host = b""
        self.forwarded_for = b""
        self.cookie = b""
        self.has_length = False
        self.chunked = False
        self.peer = b""
        self.forwarded_line = b""
        self.active: Exchange | None = None
        self.parsing: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.paused = False
        self.last_activity = 0.0
        self.out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport
        self.open = True
        self.dp.connections.add(self)
        self.last_activity = self.dp.now
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]).encode() if isinstance(peer, tuple) else b"unix"
        self.forwarded_line = b"x-forwarded-for: " + self.peer + b"\r\n"
        # TCP_NODELAY: uvloop and asyncio already set it on every TCP transport.

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.dp.connections.discard(self)
        active = self.active
        if active is not None:
            upstream = active.upstream
            if upstream is not None:
                # The response was not fully relayed: this connection cannot be reused.
                upstream.exchange = None
                upstream.release(False)
                active.upstream = None
            self.active = None
            self.dp.in_flight -= 1
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        if not self.mid and data[-4:] == b"\r\n\r\n":
            routes = self.source.routes
            if routes is not None and routes.plain and self._fast_request(data, routes):
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply_and_close(501, b"protocol upgrades are not supported\n")
        except httptools.HttpParserError:
            self._reply_and_close(400, b"malformed request\n")

    def write(self, data: bytes) -> None:
        self.out.append(data)
        self.flush()

    def flush(self) -> None:
        out = self.out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            if self.transport is not None:
                self.dp.send(self.transport, data)

    def close(self) -> None:
        self.flush()
        if self.transport is not None:
            self.dp.send(self.transport, None)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.transport.resume_reading()

    # backpressure from the client: stop reading the upstream answer
    def pause_writing(self) -> None:
        active = self.active
        if active is not None and active.upstream is not None:
            transport = active.upstream.transport
            if transport is not None:
                transport.pause_reading()

    def resume_writing(self) -> None:
        active = self.active
        if active is not None and active.upstream is not None:
            transport = active.upstream.transport
            if transport is not None:
                transport.resume_reading()

    def _reply_and_close(self, status: int, body: bytes) -> None:
        reason = REASONS.get(status, b"Not Implemented")
        self.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.close()

    def _fast_request(self, data: bytes, routes: Routes) -> bool:
        """One whole bodiless HTTP/1.1 request with no header to rewrite but Host:
        forward the raw bytes plus X-Forwarded-*, validated by the checking parser
        with no per-header callback. Anything else (pipelined, bodies, hop-by-hop or
        X-Forwarded-* headers, HTTP/1.0) returns False and goes through the full
        parser, which sees the same bytes."""
        lower = data.lower()
        if _REWRITTEN_REQUEST.search(lower) is not None:
            return False
        checker = self.checker
        marks = self.checks.marks
        try:
            checker.feed_data(data)
            # The head ends the data and announces no body, so a valid one completes.
            whole = marks == ONE_MESSAGE
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            whole = False
        marks.clear()
        if not whole:
            self.checker = httptools.HttpRequestParser(self.checks)  # starts afresh
            return False
        if not checker.should_keep_alive():
            # HTTP/1.0 is forwarded as 1.1 by the full path; with no Connection
            # header, keep-alive is exactly "HTTP/1.1".
            return False
        method: bytes = checker.get_method()
        at = lower.rfind(b"\nhost:")  # the last one, as the full path keeps
        if at < 0:
            tail = self.forwarded_line + b"x-forwarded-proto: http\r\n\r\n"
        else:
            line = self.host_line
            if not line or data[at : at + len(line)] != line:
                # Not the Host line of this connection's previous fast request.
                end = data.find(b"\r", at)  # the head ends with CRLF CRLF: found
                host = data[at + 6 : end].strip(b" \t")
                self.host_line = data[at : end + 1]
                self.host_tail = b"%sx-forwarded-proto: http\r\nx-forwarded-host: %s\r\n\r\n" % (
                    self.forwarded_line,
                    host,
                )
            tail = self.host_tail
        self.http11 = True
        ex = Exchange(self, data[:-2] + tail, routes)
        ex.is_head = is_head = method == b"HEAD"
        ex.method_idempotent = method in IDEMPOTENT
        ex.request_done = True
        ex.plain = not is_head
        # Inlined _route for a plain table (no rules, no cookies): the weighted slot.
        dp = self.dp
        counter = dp.counter
        dp.counter = counter + 1
        slots = routes.slots
        ex.target = slots[counter % len(slots)]
        if routes.mirror is not None:
            mask = routes.mirror_mask
            if mask and mask[counter % len(mask)]:
                dp.mirror(routes, ex.head)
        self.parsing = ex
        if self.active is None:
            self._start(ex)
        else:
            self.queue.append(ex)
            self.pause_reading()
        return True

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.mid = True

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # One pass per header: forward it, or capture it, or drop it (hop-by-hop).
        lname = name.lower()
        kind = _REQUEST_HEADERS.get(lname)
        if kind is None:
            if lname[:6] != b"proxy-":
                self.lines.append(name + b": " + value + b"\r\n")
            return
        if kind == _KEEP:
            self.lines.append(name + b": " + value + b"\r\n")
            if lname == b"host":
                # llhttp keeps trailing whitespace; a field value has none (RFC 9110 §5.5).
                self.host = value.rstrip(b" \t")
            elif lname == b"cookie":
                self.cookie = value if not self.cookie else self.cookie + b"; " + value
            else:  # content-length
                self.has_length = value.strip() != b"0"
        elif kind == _CONNECTION:
            tokens = {t.strip().lower() for t in value.split(b",")}
            self.drop = tokens if self.drop is None else self.drop | tokens
        elif kind == _TRANSFER_ENCODING:
            self.chunked = b"chunked" in value.lower()
        elif kind == _FORWARDED_FOR:
            self.forwarded_for = (
                value if not self.forwarded_for else self.forwarded_for + b", " + value
            )

    def on_headers_complete(self) -> None:
        self._on_request()

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        if ex is not None:
            ex.request_body(body)

    def on_message_complete(self) -> None:
        self.mid = False
        ex = self.parsing
        if ex is not None:
            if ex.chunked_in:
                ex.request_complete()
            else:
                ex.request_done = True

    def _on_request(self) -> None:
        parser = self.parser
        self.http11 = parser.get_http_version() == "1.1"
        method: bytes = parser.get_method()
        routes = self.source.routes  # the table current when the head is complete
        chunked = self.chunked
        lines = self.lines
        rule_target: Target | None = None
        if routes is not None and routes.header_rules:
            rule_target = _match_header_rule(routes, lines)
        drop = self.drop
        if drop is not None:
            # Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1): rare.
            lines = [ln for ln in lines if ln.split(b":", 1)[0].lower() not in drop]
        if self.forwarded_for:
            lines.append(b"x-forwarded-for: " + self.forwarded_for + b", " + self.peer + b"\r\n")
        else:
            lines.append(self.forwarded_line)
        if self.host:
            lines.append(b"x-forwarded-proto: http\r\nx-forwarded-host: " + self.host + b"\r\n")
        else:
            lines.append(b"x-forwarded-proto: http\r\n")
        if chunked:
            lines.append(b"transfer-encoding: chunked\r\n")
        head = b"%s %s HTTP/1.1\r\n%s\r\n" % (method, self.url, b"".join(lines))
        cookie = self.cookie
        has_length = self.has_length
        # Ready for the next head.
        self.url = b""
        self.lines = []
        self.drop = None
        self.host = b""
        self.forwarded_for = b""
        self.cookie = b""
        self.has_length = False
        self.chunked = False

        if routes is None:
            ex = Exchange(self, head, EMPTY_ROUTES)
            self._enqueue(ex)
            return
        ex = Exchange(self, head, routes)
        ex.has_body = has_length or chunked
        ex.chunked_in = chunked
        ex.is_head = method == b"HEAD"
        ex.method_idempotent = method in IDEMPOTENT
        ex.client_keep_alive = parser.should_keep_alive()
        self._route(ex, routes, rule_target, cookie)

    def _route(
        self, ex: Exchange, routes: Routes, rule_target: Target | None, cookie: bytes
    ) -> None:
        """Choose the release (rule, cookie, sticky, weighted slot), mirror, enqueue."""
        dp = self.dp
        counter = dp.counter
        dp.counter = counter + 1
        target = rule_target
        if target is None and cookie and routes.needs_cookies:
            jar = parse_cookie_header(cookie.decode("latin-1"))
            for cookie_name, by_cookie in routes.cookie_rules.items():
                got = jar.get(cookie_name)
                if got is not None and got in by_cookie:
                    target = by_cookie[got]
                    break
            if target is None and routes.sticky_cookie is not None:
                stuck = jar.get(routes.sticky_cookie)
                if stuck is not None:
                    target = routes.sticky_targets.get(stuck)
            if target is None:
                target = routes.slots[counter % len(routes.slots)]
                if routes.sticky_cookie is not None:
                    ex.set_cookie = target.set_cookie
        elif target is None:
            target = routes.slots[counter % len(routes.slots)]
            if routes.sticky_cookie is not None:
                ex.set_cookie = target.set_cookie
        ex.target = target
        # Whole responses may be relayed as received (``Exchange.relay_whole``).
        ex.plain = self.http11 and ex.client_keep_alive and not ex.is_head and not ex.set_cookie
        mask = routes.mirror_mask
        if routes.mirror is not None and mask and not ex.has_body and mask[counter % len(mask)]:
            dp.mirror(routes, ex.head)
        self._enqueue(ex)

    def _enqueue(self, ex: Exchange) -> None:
        self.parsing = ex
        if self.active is None:
            self._start(ex)
        else:
            self.queue.append(ex)
            self.pause_reading()

    def _start(self, ex: Exchange) -> None:
        dp = self.dp
        self.active = ex
        dp.in_flight += 1
        ex.started = monotonic()
        target = ex.target
        if target is None:
            ex.fail(503)
            return
        # Inlined Target.pick for the common case: the next backend is up.
        backends = target.backends
        if not backends:
            ex.fail(503)
            return
        st = backends[target.rr % len(backends)]
        target.rr += 1
        if not st.up:
            picked = target.pick(None)
            if picked is None:
                ex.fail(503)
                return
            st = picked
        # Inlined Exchange.dispatch + DataPlane.connect for the common case: a warm
        # pooled connection and a head with no body yet.
        idle = st.idle
        while idle:
            conn = idle.pop()
            if conn.open:
                ex.state = st
                ex.attempts = 1
                conn.exchange = ex
                conn.got_bytes = False
                ex.upstream = conn
                transport = conn.transport
                if ex.body_pending is None and transport is not None:
                    dp.send(transport, ex.head)
                else:
                    ex.attached(conn)
                return
        ex.dispatch(target, st)

    def exchange_done(self, ex: Exchange) -> None:
        if self.active is not ex:
            return
        if self.out:
            self.flush()
        self.active = None
        dp = self.dp
        dp.in_flight -= 1
        self.last_activity = dp.now
        if not ex.client_keep_alive or not self.open:
            self.close()
            return
        if self.queue:
            nxt = self.queue.popleft()
            if not self.queue:
                self.resume_reading()
            self._start(nxt)
        elif dp.draining or self.source.draining:
            self.close()


def idle_sweeper(dp: DataPlane) -> Any:
    """Close keep-alive clients idle longer than ``CLIENT_IDLE_TIMEOUT`` (every 5 s)."""

    def tick() -> None:
        dp.now = monotonic()
        dp.sweep_idle(dp.now)
        dp.loop.call_later(5.0, tick)

    return dp.loop.call_later(5.0, tick)
