"""The embedded router's admin API: small HTTP/1.1 over a unix socket (mode 0600).

Only the owner of the socket can reach it: the file is created under a umask of
0177 and chmod-ed to 0600, so there is no window where another user could
connect. One request per connection (``connection: close``); this is the control
plane, a few calls per second at most, so it uses asyncio streams, not the hot
path's protocols.

    GET  /table          the served table, canonical JSON (404 before the first)
    PUT  /table          apply a table; 200 {"generation": N}, 409 older, 400 invalid
    GET  /metrics        Prometheus text exposition
    GET  /metrics.json   per-release counters as JSON (the Router port's view)
    GET  /health         the data plane's own health and its backends
    POST /drain          stop accepting, finish in-flight, answer when idle
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kiln.errors import InvalidInput, KilnError, Refused, SpecError

Handler = Callable[[str, str, bytes], Awaitable[tuple[int, str, bytes]]]

MAX_BODY = 4 * 1024 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
}


async def serve_admin(path: Path, handler: Handler) -> asyncio.AbstractServer:
    """Listen on ``path`` (replacing a stale socket file) with mode 0600."""
    if path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(
            lambda r, w: _connection(r, w, handler), path=str(path)
        )
    finally:
        os.umask(old)
    path.chmod(0o600)
    return server


async def _connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length > MAX_BODY:
            status, ctype, body = 413, "text/plain", b"body too large\n"
        else:
            payload = await asyncio.wait_for(reader.readexactly(length), 10.0) if length else b""
            status, ctype, body = await handler(method, target, payload)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        status, ctype, body = 400, "text/plain", b"malformed request\n"
    response = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\ncontent-type: {ctype}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    try:
        writer.write(response)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, OSError):
        return


def json_response(status: int, data: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(data, sort_keys=True).encode() + b"\n"


def error_response(exc: KilnError) -> tuple[int, str, bytes]:
    status = 409 if isinstance(exc, Refused) else 400 if isinstance(exc, InvalidInput) else 500
    message = exc.message
    if isinstance(exc, SpecError):
        message += ": " + "; ".join(p.render() for p in exc.problems)
    return json_response(status, {"error": {"message": message, "hint": exc.hint}})
