"""The router's fast paths against its full parser, in process with fake transports.

A whole plain request (or response) in one read is forwarded from its raw bytes
(``ClientConnection._fast_request``, ``Exchange.relay_whole``); anything else
goes through httptools callbacks. Both must put the same bytes on the wire: the
slow path is forced by feeding the same message in pieces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.adapters.traffic.embedded.exchange import Exchange
from kiln.adapters.traffic.embedded.proxy import ClientConnection, DataPlane
from kiln.adapters.traffic.embedded.upstream import UpstreamConnection
from kiln.core.traffic.selection import compile_plan
from kiln.core.traffic.table import Backend, Mirror, Release, RouteTable, Sticky

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def take(self) -> bytes:
        data = b"".join(self.written)
        self.written.clear()
        return data

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 50000) if name == "peername" else None

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class Wire:
    """One client connection and one pooled upstream connection, both faked."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sticky: bool = False) -> None:
        self.dp = DataPlane(loop)
        table = RouteTable(
            1,
            "t",
            (Release("r", 100, (Backend("127.0.0.1", 9),)),),
            sticky=Sticky() if sticky else None,
        )
        self.dp.install(compile_plan(table))
        self.backend = self.dp.states["127.0.0.1:9"]
        self.upstream = UpstreamConnection(self.dp, self.backend)
        self.up = FakeTransport()
        self.upstream.connection_made(self.up)  # type: ignore[arg-type]
        self.backend.idle.append(self.upstream)
        self.client = ClientConnection(self.dp)
        self.down = FakeTransport()
        self.client.connection_made(self.down)  # type: ignore[arg-type]

    def request(self, *chunks: bytes) -> bytes:
        for chunk in chunks:
            self.client.data_received(chunk)
        self.dp.flush_out()  # what the loop does at the end of its callbacks
        return self.up.take()

    def respond(self, *chunks: bytes) -> bytes:
        for chunk in chunks:
            self.upstream.data_received(chunk)
        self.dp.flush_out()
        return self.down.take()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records which fast path accepted a message."""
    calls: list[str] = []
    request, relay = ClientConnection._fast_request, Exchange.relay_whole

    def spy_request(self: ClientConnection, data: bytes, routes: object) -> bool:
        taken = request(self, data, routes)  # type: ignore[arg-type]
        if taken:
            calls.append("request")
        return taken

    def spy_relay(self: Exchange, data: bytes, conn: UpstreamConnection) -> bool:
        taken = relay(self, data, conn)
        if taken:
            calls.append("response")
        return taken

    monkeypatch.setattr(ClientConnection, "_fast_request", spy_request)
    monkeypatch.setattr(Exchange, "relay_whole", spy_relay)
    return calls


def pieces(data: bytes) -> tuple[bytes, ...]:
    """The same bytes in two reads: forces the full parser."""
    return data[:5], data[5:]


def test_a_plain_get_is_forwarded_raw_with_forwarded_headers(
    loop: asyncio.AbstractEventLoop, fast_calls: list[str]
) -> None:
    wire = Wire(loop)
    sent = wire.request(b"GET /a?b=1 HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\r\n")
    assert sent == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n"
        b"x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n"
        b"x-forwarded-host: shop.example\r\n\r\n"
    )
    assert wire.respond(OK) == OK
    assert fast_calls == ["request", "response"]
    # The upstream connection went back to the pool, the client is ready again.
    assert wire.backend.idle == [wire.upstream]
    assert wire.client.active is None
    stats = wire.dp.stats["r"]
    assert stats.by_class[1] == 1 and sum(stats.buckets) == 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"DELETE /thing HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Auth: x\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_fast_and_full_paths_forward_the_same_request(
    loop: asyncio.AbstractEventLoop, request_bytes: bytes
) -> None:
    fast, slow = Wire(loop), Wire(loop)
    assert fast.request(request_bytes) == slow.request(*pieces(request_bytes))


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n", "appended"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "hop-by-hop"),
        (b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", "forwarded as 1.1"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", "a body"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", "pipelined"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\n", "bytes after the head"),
    ],
)
def test_requests_that_need_rewriting_take_the_full_path(
    loop: asyncio.AbstractEventLoop, fast_calls: list[str], request_bytes: bytes, reason: str
) -> None:
    wire = Wire(loop)
    assert wire.request(request_bytes).startswith(request_bytes.split(b" ", 1)[0] + b" /")
    assert "request" not in fast_calls, reason


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\nHost: x\n\n\r\n\r\n",  # bare LF
        b"GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",  # space before the colon
        b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",  # a control character
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",  # space in the target
    ],
)
def test_malformed_requests_are_refused_whole_or_in_pieces(
    loop: asyncio.AbstractEventLoop, request_bytes: bytes
) -> None:
    for wire, chunks in ((Wire(loop), (request_bytes,)), (Wire(loop), pieces(request_bytes))):
        assert wire.request(*chunks) == b""
        assert wire.down.take().startswith(b"HTTP/1.1 400 ")
        assert wire.down.closed  # closed after the answer was written


def test_an_upgrade_request_is_refused_on_the_fast_path_too(
    loop: asyncio.AbstractEventLoop,
) -> None:
    wire = Wire(loop)
    wire.request(b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n")
    assert wire.down.take().startswith(b"HTTP/1.1 501 ")


@pytest.mark.parametrize(
    "response",
    [
        OK,
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ],
)
def test_fast_and_full_paths_relay_the_same_response(
    loop: asyncio.AbstractEventLoop, response: bytes
) -> None:
    fast, slow = Wire(loop), Wire(loop)
    for wire in (fast, slow):
        wire.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert fast.respond(response) == slow.respond(*pieces(response))
    assert fast.backend.idle == [fast.upstream] and slow.backend.idle == [slow.upstream]


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 2\r\n\r\nok", "hop-by-hop"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok", "body cut across reads"),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", "HTTP/1.0"),
        (b"HTTP/1.1 200 OK\r\n\r\nok", "close-delimited"),
        (b"HTTP/1.1 100 Continue\r\n\r\n", "interim"),
    ],
)
def test_responses_that_need_the_parser_take_the_full_path(
    loop: asyncio.AbstractEventLoop, fast_calls: list[str], response: bytes, reason: str
) -> None:
    wire = Wire(loop)
    wire.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    wire.respond(response)
    assert fast_calls == ["request"], reason


def test_a_response_cut_across_reads_still_streams(loop: asyncio.AbstractEventLoop) -> None:
    wire = Wire(loop)
    wire.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    got = wire.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234", b"56789")
    assert got.endswith(b"\r\n\r\n0123456789")
    # The next exchange on the same pooled connection may take the fast path again.
    wire.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wire.respond(OK) == OK


def test_a_head_request_or_a_sticky_table_or_draining_never_relays_raw(
    loop: asyncio.AbstractEventLoop, fast_calls: list[str]
) -> None:
    head = Wire(loop)
    head.request(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n").endswith(b"\r\n\r\n")
    sticky = Wire(loop, sticky=True)
    sticky.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"set-cookie: kiln_release=r" in sticky.respond(OK).lower()
    draining = Wire(loop)
    draining.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    draining.dp.draining = True
    assert b"connection: close" in draining.respond(OK)
    assert fast_calls == ["request"] * 2  # HEAD and the draining GET; sticky parses cookies


def test_a_plain_request_is_mirrored_from_the_fast_path(
    loop: asyncio.AbstractEventLoop, fast_calls: list[str]
) -> None:
    wire = Wire(loop)
    table = RouteTable(
        2,
        "t",
        (
            Release("r", 100, (Backend("127.0.0.1", 9),)),
            Release("m", 0, (Backend("127.0.0.1", 10),)),
        ),
        mirror=Mirror("m"),
    )
    wire.dp.install(compile_plan(table))
    shadow = wire.dp.states["127.0.0.1:10"]
    mirror_conn = UpstreamConnection(wire.dp, shadow)
    mirror_wire = FakeTransport()
    mirror_conn.connection_made(mirror_wire)  # type: ignore[arg-type]
    shadow.idle.append(mirror_conn)
    sent = wire.request(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert fast_calls == ["request"]
    assert mirror_wire.take() == sent
    mirror_conn.data_received(OK)  # the shadow's answer is counted, never relayed
    wire.dp.flush_out()
    assert wire.down.take() == b""
    assert wire.respond(OK) == OK
    assert wire.dp.stats["m"].mirrored == 1 and wire.dp.stats["m"].by_class[1] == 1


# Header names a request may carry, hop-by-hop and forwarded ones included.
_NAMES = st.sampled_from(
    [
        "Host",
        "Accept",
        "User-Agent",
        "X-Request-Id",
        "Connection",
        "Keep-Alive",
        "TE",
        "Upgrade-Insecure-Requests",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "Proxy-Authorization",
        "Cookie",
        "x-te",
    ]
)
_VALUES = st.text(alphabet="abcXYZ019-_.,;= ", min_size=1, max_size=12).map(str.strip).filter(bool)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "OPTIONS", "DELETE"]),
    path=st.sampled_from(["/", "/a/b", "/q?x=1&y=2", "*"]),
    headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
)
def test_any_bodiless_request_is_forwarded_the_same_whole_or_in_pieces(
    method: str, path: str, headers: list[tuple[str, str]]
) -> None:
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    data = (head + "\r\n").encode()
    loop = asyncio.new_event_loop()
    try:
        fast, slow = Wire(loop), Wire(loop)
        whole = fast.request(data)
        one_by_one = slow.request(*(data[i : i + 1] for i in range(len(data))))
        assert whole == one_by_one
        assert fast.down.take() == slow.down.take()  # the same error answer, if any
    finally:
        loop.close()


# Host lines as a keep-alive client may vary them: the fast path reuses the tail it
# built for the previous request's Host line only when the line is byte for byte the
# same (``ClientConnection.host_line``).
_HOST_LINES = st.sampled_from(
    [
        "Host: a.example\r\n",
        "Host: a.example \r\n",
        "host: a.example\r\n",
        "Host: A.example\r\n",
        "Host: a.example:8080\r\n",
        "Host: a.exampl\r\n",
        "Host: b\r\n",
        "Host: a.example\r\nHost: b\r\n",
        "",
    ]
)


@settings(max_examples=100, deadline=None)
@given(hosts=st.lists(_HOST_LINES, min_size=1, max_size=6))
def test_one_connection_forwards_each_host_the_same_whole_or_in_pieces(
    hosts: list[str],
) -> None:
    loop = asyncio.new_event_loop()
    try:
        fast, slow = Wire(loop), Wire(loop)
        for host in hosts:
            data = f"GET / HTTP/1.1\r\n{host}Accept: */*\r\n\r\n".encode()
            assert fast.request(data) == slow.request(*pieces(data))
            # Answered, so the connection takes its next request at once.
            assert fast.respond(OK) == slow.respond(OK) == OK
            fast.backend.idle.append(fast.upstream)
            slow.backend.idle.append(slow.upstream)
    finally:
        loop.close()


def test_a_repeated_host_line_takes_the_fast_path_every_time(
    loop: asyncio.AbstractEventLoop, fast_calls: list[str]
) -> None:
    wire = Wire(loop)
    for host in (b"a", b"a", b"b", b"a"):
        sent = wire.request(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert sent.endswith(b"x-forwarded-host: " + host + b"\r\n\r\n")
        assert wire.respond(OK) == OK
    assert fast_calls == ["request", "response"] * 4
