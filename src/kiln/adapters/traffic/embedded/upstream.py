"""Upstream side of the embedded router: keep-alive connections to backends, each
parsing responses for whatever is attached (a client ``Exchange`` or a
``Mirrored`` shadow copy, whose answer is counted and discarded)."""

from __future__ import annotations

import asyncio
import contextlib
from time import monotonic
from typing import TYPE_CHECKING, Protocol

import httptools

from kiln.adapters.traffic.embedded.routing import HOP_BY_HOP, BackendState, Marks
from kiln.adapters.traffic.embedded.stats import ReleaseStats

if TYPE_CHECKING:
    from kiln.adapters.traffic.embedded.proxy import DataPlane


class Attached(Protocol):
    """What an upstream connection reports to: a client exchange or a mirror copy."""

    plain: bool

    def attached(self, conn: UpstreamConnection) -> None: ...
    def relay_whole(self, data: bytes, conn: UpstreamConnection) -> bool: ...
    def response_head(self, status: int, conn: UpstreamConnection) -> None: ...
    def response_body(self, body: bytes) -> None: ...
    def response_complete(self, conn: UpstreamConnection) -> None: ...
    def upstream_failed(
        self, conn: UpstreamConnection | None, st: BackendState, penalize: bool = True
    ) -> None: ...
    def upstream_lost(self, conn: UpstreamConnection) -> None: ...
    def upstream_broken(self, conn: UpstreamConnection) -> None: ...
    def flush(self) -> None: ...
    def pause_client(self) -> None: ...
    def resume_client(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """A keep-alive connection to one backend, parsing responses for the attached
    exchange (the real request or a mirror copy)."""

    __slots__ = (
        "checker",
        "checks",
        "dp",
        "drop",
        "exchange",
        "got_bytes",
        "has_length",
        "has_te",
        "lines",
        "mid",
        "open",
        "parser",
        "reused",
        "state",
        "transport",
    )

    def __init__(self, dp: DataPlane, state: BackendState) -> None:
        self.dp = dp
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Attached | None = None
        # The response head being parsed, already filtered (hop-by-hop headers out).
        self.lines: list[bytes] = []
        self.drop: set[bytes] | None = None
        self.has_length = False
        self.has_te = False
        self.got_bytes = False
        self.reused = False
        self.open = False
        self.mid = False  # the parser is inside a response
        self.checks = Marks()  # the fast path's checking parser (``Exchange.relay_whole``)
        self.checker = httptools.HttpResponseParser(self.checks)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport
        self.open = True
        # TCP_NODELAY: uvloop and asyncio already set it on every TCP transport.

    def attach(self, exchange: Attached) -> None:
        self.exchange = exchange
        self.got_bytes = False
        exchange.attached(self)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.dp.send(self.transport, data)

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.dp.send(self.transport, None)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        exchange = self.exchange
        if (
            exchange is not None
            and exchange.plain
            and not self.mid
            and data[:9] == b"HTTP/1.1 "
            and exchange.relay_whole(data, self)
        ):
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            broken, self.exchange = self.exchange, None
            self.close()
            if broken is not None:
                broken.upstream_broken(self)
        if exchange is not None:
            exchange.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.upstream_lost(self)
        else:
            with contextlib.suppress(ValueError):
                self.state.idle.remove(self)

    # httptools callbacks (no on_status: the reason phrase is rebuilt from the code;
    # the head state is reset once it has been consumed)
    def reset_head(self) -> None:
        self.lines = []
        self.drop = None
        self.has_length = False
        self.has_te = False

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in HOP_BY_HOP or lname[:6] == b"proxy-":
            if lname == b"connection":
                tokens = {t.strip().lower() for t in value.split(b",")}
                self.drop = tokens if self.drop is None else self.drop | tokens
            elif lname == b"transfer-encoding":
                self.has_te = True
            return
        if lname == b"content-length":
            self.has_length = True
        self.lines.append(name + b": " + value + b"\r\n")

    def on_message_begin(self) -> None:
        self.mid = True

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.response_head(self.parser.get_status_code(), self)
        self.reset_head()

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.response_body(body)

    def on_message_complete(self) -> None:
        self.mid = False
        if self.exchange is not None:
            self.exchange.response_complete(self)

    # flow control: the client side pauses us when its buffer is full
    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.pause_client()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.resume_client()

    def release(self, reusable: bool) -> None:
        """The exchange is done with this connection."""
        self.exchange = None
        if reusable and self.open:
            self.reused = True
            self.state.give_back(self)
        else:
            self.close()


class Mirrored:
    """A shadow copy: sent, answered, counted in the mirror release's stats, discarded."""

    __slots__ = ("dp", "head", "started", "stats", "status")
    plain = False  # always parsed: the answer is only counted

    def __init__(self, dp: DataPlane, stats: ReleaseStats, head: bytes) -> None:
        self.dp = dp
        self.stats = stats
        self.head = head
        self.started = monotonic()
        self.status = 0

    def attached(self, conn: UpstreamConnection) -> None:
        conn.write(self.head)

    def relay_whole(self, data: bytes, conn: UpstreamConnection) -> bool:
        return False

    def response_head(self, status: int, conn: UpstreamConnection) -> None:
        self.status = status

    def response_body(self, body: bytes) -> None:
        return

    def response_complete(self, conn: UpstreamConnection) -> None:
        if self.status < 200:
            return
        self._done()
        conn.release(conn.parser.should_keep_alive())

    def _done(self) -> None:
        self.dp.mirrors_in_flight -= 1
        if self.status:
            self.stats.observe(self.status, monotonic() - self.started)

    def upstream_failed(
        self, conn: UpstreamConnection | None, st: BackendState, penalize: bool = True
    ) -> None:
        self.stats.connect_failures += 1
        self._done()

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        self._done()

    def upstream_broken(self, conn: UpstreamConnection) -> None:
        self._done()

    def pause_client(self) -> None:
        return

    def flush(self) -> None:
        return

    def resume_client(self) -> None:
        return
