"""A tiny fast HTTP/1.1 backend for router tests: ``python backend.py PORT NAME [DELAY_MS]``.

Answers every request with ``200 <NAME>`` (keep-alive, content-length); echoes
request headers back when the path is ``/echo`` (as JSON, for header tests), the
request body on ``/body``, and ``/big?N`` answers N MiB. With DELAY_MS, ``/`` answers
that late (without blocking the loop). Prints ``ready`` once listening.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httptools


class Backend(asyncio.Protocol):
    def __init__(self, name: bytes, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.parser = httptools.HttpRequestParser(self)
        self.headers: list[tuple[str, str]] = []
        self.url = b""
        self.body = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.headers = []
        self.url = b""
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.url.startswith(b"/echo"):
            body = json.dumps({"headers": self.headers, "url": self.url.decode()}).encode()
        elif self.url.startswith(b"/body"):
            body = self.body
        elif self.url.startswith(b"/slow"):
            # Answer after 0.8 s without blocking the loop: an in-flight request.
            keep = self.parser.should_keep_alive()
            asyncio.get_running_loop().call_later(0.8, self._answer, self.name, keep)
            return
        elif self.url.startswith(b"/big"):
            # /big?MiB: that many MiB, written at once (the backend buffers them all).
            assert self.transport is not None
            size = int(self.url.partition(b"?")[2] or b"1") << 20
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                b"content-length: %d\r\n\r\n" % size
            )
            block = bytes(range(256)) * 4096
            for _ in range(size // len(block)):
                self.transport.write(block)
            return
        elif self.url.startswith(b"/chunked"):
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
                b"connection: keep-alive, x-secret\r\n"
                b"x-secret: 1\r\nkeep-alive: timeout=5\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            return
        elif self.delay:
            keep = self.parser.should_keep_alive()
            asyncio.get_running_loop().call_later(self.delay, self._answer, self.name, keep)
            return
        else:
            body = self.name
        self._answer(body, self.parser.should_keep_alive())

    def _answer(self, body: bytes, keep: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n%s\r\n%s"
            % (len(body), b"" if keep else b"connection: close\r\n", body)
        )
        if not keep:
            self.transport.close()


async def main() -> None:
    port, name = int(sys.argv[1]), sys.argv[2].encode()
    delay = int(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Backend(name, delay), "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
