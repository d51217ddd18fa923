"""One client request and its answer, possibly over several upstream attempts.

An ``Exchange`` holds the backend it was dispatched to until its response ends,
which is why a route swap never moves a request in flight. It writes the
response head (hop-by-hop headers out, framing chosen for the client), relays
the body, and on an upstream failure before any response byte retries an
idempotent bodiless request elsewhere (``MAX_ATTEMPTS``), else answers 502.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from http import HTTPStatus
from time import monotonic
from typing import TYPE_CHECKING

import httptools

from kiln.adapters.traffic.embedded.routing import (
    MAX_IDLE_PER_BACKEND,
    ONE_MESSAGE,
    BackendState,
    Routes,
    Target,
)
from kiln.core.traffic.metrics import LATENCY_BOUNDS

if TYPE_CHECKING:
    from kiln.adapters.traffic.embedded.proxy import ClientConnection
    from kiln.adapters.traffic.embedded.upstream import UpstreamConnection

MAX_ATTEMPTS = 3
PENDING_BODY_LIMIT = 1 << 20
# Status lines rebuilt from the code (HTTP/1.1 reason phrases carry no meaning, RFC 9112 §4).
STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
# Response headers that ``relay_whole`` leaves to the full parser (hop-by-hop).
_HOP_BY_HOP_RESPONSE = re.compile(
    rb"\n(?:connection|keep-alive|proxy-|te:|trailer|transfer-encoding|upgrade)"
)


class Exchange:
    """One client request and its response, possibly across several upstream attempts."""

    # Defaults live on the class: constructing an exchange (once per request) sets
    # only what every request reads, the rest is stored when it differs. (CPython
    # 3.11 reads an instance attribute quickly, a class default slowly: measured
    # with ``benchmarks/bench_router_cpu.py``.)
    target: Target | None = None
    state: BackendState | None = None
    upstream: UpstreamConnection | None = None
    has_body = False
    chunked_in = False
    is_head = False
    method_idempotent = True
    plain = False
    request_done = False
    response_started = False
    until_close = False
    set_cookie = b""
    status = 0
    attempts = 0
    tried: list[BackendState] | None = None
    started = 0.0

    def __init__(self, client: ClientConnection, head: bytes, routes: Routes) -> None:
        self.client = client
        self.head = head
        self.routes = routes
        self.body_pending: list[bytes] | None = None
        self.chunked_out = False
        self.client_keep_alive = True

    # -- request side --------------------------------------------------------------------
    def dispatch(self, target: Target, st: BackendState) -> None:
        self.target = target
        self.state = st
        self.attempts += 1
        self.client.dp.connect(st, self)

    def attached(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        pending = self.body_pending
        if pending:
            conn.write(self.head + b"".join(pending))
            self.body_pending = None
            client = self.client
            if client.paused and not client.queue:
                client.resume_reading()  # paused by the bound below
        else:
            conn.write(self.head)

    def request_body(self, chunk: bytes) -> None:
        if self.chunked_in:
            chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        self.request_body_raw(chunk)

    def request_complete(self) -> None:
        self.request_done = True
        if self.chunked_in:
            self.request_body_raw(b"0\r\n\r\n")

    def request_body_raw(self, data: bytes) -> None:
        upstream = self.upstream
        if upstream is not None:
            upstream.write(data)
            return
        # No upstream yet (connecting): hold the body, but never more than
        # PENDING_BODY_LIMIT; past it, stop reading the client until connected.
        if self.body_pending is None:
            self.body_pending = [data]
        else:
            self.body_pending.append(data)
        if sum(len(c) for c in self.body_pending) > PENDING_BODY_LIMIT:
            self.client.pause_reading()

    def pause_client(self) -> None:
        self.client.pause_reading()

    def resume_client(self) -> None:
        self.client.resume_reading()

    # -- response side -------------------------------------------------------------------
    def response_head(self, status: int, conn: UpstreamConnection) -> None:
        st = self.state
        if st is not None:
            st.failures = 0
        if status < 200:
            if status != 101:
                self.client.write(STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status)
                self.client.write(b"\r\n")
            return
        self.status = status
        self.response_started = True
        out = conn.lines
        out.insert(0, STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status)
        has_length = conn.has_length
        has_te = conn.has_te
        if conn.drop is not None or (has_te and has_length):
            # Rare: headers named in Connection, or a length beside chunking (which wins).
            unwanted = set(conn.drop or ())
            if has_te:
                unwanted.add(b"content-length")
            out = [out[0]] + [ln for ln in out[1:] if ln.split(b":", 1)[0].lower() not in unwanted]
            has_length = has_length and not has_te
        client = self.client
        no_body = self.is_head or status == 204 or status == 304
        if not no_body and (has_te or not has_length):
            if client.http11:
                out.append(b"transfer-encoding: chunked\r\n")
                self.chunked_out = True
            else:
                self.client_keep_alive = False
            self.until_close = not has_te and not has_length
        if client.dp.draining:
            self.client_keep_alive = False
        if not self.client_keep_alive:
            out.append(b"connection: close\r\n")
        elif not client.http11:
            out.append(b"connection: keep-alive\r\n")
        if self.set_cookie:
            out.append(self.set_cookie)
        out.append(b"\r\n")
        client.out.append(b"".join(out))
        if self.is_head and self.upstream is not None:
            # httptools cannot be told a response answers HEAD; finish here and do
            # not reuse the connection, whose parser would wait for a body.
            conn = self.upstream
            self.upstream = None
            conn.exchange = None
            conn.release(False)
            self._finish()

    def response_body(self, body: bytes) -> None:
        if self.chunked_out:
            self.client.out.append(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self.client.out.append(body)

    def flush(self) -> None:
        """Write what the last upstream read produced in one send (head + body)."""
        client = self.client
        if client.out:
            client.flush()

    def relay_whole(self, data: bytes, conn: UpstreamConnection) -> bool:
        """Fast path for an upstream read that is exactly one whole HTTP/1.1 response
        with no hop-by-hop header: relay the bytes as received, validated by the
        connection's checking parser with no per-header callback. Anything else
        returns False and goes through the full parser, which sees the same bytes.
        Only called when ``plain`` (an HTTP/1.1 keep-alive client, not HEAD, no
        cookie to add) and the full parser is between messages."""
        end = data.find(b"\r\n\r\n")
        if end < 0 or len(data) >= 65536:
            return False  # a head or body cut across reads: stream it
        if _HOP_BY_HOP_RESPONSE.search(data[:end].lower()) is not None:
            return False
        checker = conn.checker
        marks = conn.checks.marks
        try:
            checker.feed_data(data)
            whole = marks == ONE_MESSAGE
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            whole = False
        marks.clear()
        status: int = checker.get_status_code()
        if not whole or status < 200:
            # Not one whole final answer (a 1xx, a cut body, trailing bytes, broken
            # bytes): the full parser takes these bytes; the checker starts afresh.
            conn.checker = httptools.HttpResponseParser(conn.checks)
            return False
        client = self.client
        if client.dp.draining:
            return False  # the answer must say connection: close
        st = self.state
        if st is not None:
            st.failures = 0
        self.status = status
        self.response_started = True
        transport = client.transport
        if client.out or transport is None:
            client.out.append(data)
            client.flush()
        else:
            client.dp.send(transport, data)  # the upstream's bytes object, not copied
        self._complete(conn, True)
        return True

    def response_complete(self, conn: UpstreamConnection) -> None:
        if not self.response_started:
            return  # an interim 1xx answer ended; the real one follows
        self._complete(conn, conn.parser.should_keep_alive())

    def _complete(self, conn: UpstreamConnection, keep_alive: bool) -> None:
        self.upstream = None
        conn.exchange = None
        # Inlined UpstreamConnection.release: this runs once per request.
        if conn.open and self.request_done and keep_alive:
            st = conn.state
            if st.retired or len(st.idle) >= MAX_IDLE_PER_BACKEND:
                conn.close()
            else:
                conn.reused = True
                st.idle.append(conn)
        else:
            conn.close()
        client = self.client
        if self.chunked_out:
            client.out.append(b"0\r\n\r\n")
        # Inlined _finish and ReleaseStats.observe: once per request.
        target = self.target
        if target is not None:
            stats = target.stats
            elapsed = monotonic() - self.started
            index = self.status // 100 - 1
            if 0 <= index < 5:
                stats.by_class[index] += 1
            stats.buckets[bisect_left(LATENCY_BOUNDS, elapsed)] += 1
            stats.latency_sum += elapsed
        client.exchange_done(self)

    def _finish(self) -> None:
        target = self.target
        if target is not None:
            target.stats.observe(self.status, monotonic() - self.started)
        self.client.exchange_done(self)

    # -- failures ---------------------------------------------------------------------------
    def upstream_failed(
        self, conn: UpstreamConnection | None, st: BackendState, penalize: bool = True
    ) -> None:
        """No answer from ``st`` at all: retry if safe, else 502.

        ``penalize`` is False for a pooled keep-alive connection the backend closed
        before we wrote (a benign race): retried, but not held against the backend.
        """
        dp = self.client.dp
        target = self.target
        if penalize:
            dp.failed(st)
            if target is not None:
                target.stats.connect_failures += 1
        else:
            # A backend that closed one idle connection (a restart) likely closed
            # them all: drop its pool so the retry opens a fresh connection.
            idle, st.idle = st.idle, []
            for stale in idle:
                stale.close()
        self.upstream = None
        if not self.client.open:
            self.client.exchange_done(self)
            return
        if not self.has_body and self.method_idempotent and self.attempts < MAX_ATTEMPTS:
            if self.tried is None:
                self.tried = [st]
            else:
                self.tried.append(st)
            nxt: tuple[Target, BackendState] | None = None
            if target is not None:
                again = target.pick(self.tried)
                if again is not None:
                    nxt = (target, again)
            if nxt is None:
                nxt = self.routes.pick_other(self.tried)
            if nxt is not None:
                nxt[0].stats.retries += 1
                self.dispatch(*nxt)
                return
        self.fail(502)

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        st = self.state
        if self.response_started:
            if self.until_close:
                # A close-delimited body (no length, not chunked) ends with the close.
                self.upstream = None
                if self.chunked_out:
                    self.client.out.append(b"0\r\n\r\n")
                self._finish()
                return
            # Cut mid-response: the client must see the truncation, never a silent end.
            target = self.target
            if target is not None:
                target.stats.connect_failures += 1
            self.client.close()
            self.client.exchange_done(self)
            return
        if st is not None:
            self.upstream_failed(conn, st, penalize=not (conn.reused and not conn.got_bytes))

    def upstream_broken(self, conn: UpstreamConnection) -> None:
        if self.response_started:
            self.client.close()
            self.client.exchange_done(self)
        else:
            self.upstream = None
            self.fail(502)

    def fail(self, status: int) -> None:
        """Answer with the router's own error (the backend never answered)."""
        self.status = status
        self.response_started = True
        self.client_keep_alive = False
        body = REASONS.get(status, b"error") + b"\n"
        self.client.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, REASONS.get(status, b""), len(body), body)
        )
        self._finish()
