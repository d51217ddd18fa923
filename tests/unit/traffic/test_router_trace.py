"""The router's opt-in stall tracing (KILN_ROUTER_TRACE): off by default, and when on,
one JSON line per late loop turn, collection, large send batch and upstream connect."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import socket
import time
from typing import Any

from kiln.adapters.traffic.embedded.proxy import DataPlane
from kiln.adapters.traffic.embedded.routing import BackendState
from kiln.adapters.traffic.embedded.trace import TRACE_ENV, LoopTrace, maybe_install


def _events(out: io.StringIO, kind: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [e for e in lines if e["event"] == kind]


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(data)


class _Exchange:
    def __init__(self) -> None:
        self.failed = asyncio.get_running_loop().create_future()

    def upstream_failed(self, conn: object, st: BackendState, penalize: bool = True) -> None:
        self.failed.set_result(st.address)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_without_the_variable_nothing_is_hooked() -> None:
    async def body() -> None:
        dp = DataPlane(asyncio.get_running_loop())
        callbacks = list(gc.callbacks)
        assert maybe_install(dp, {}) is None
        assert maybe_install(dp, {TRACE_ENV: ""}) is None
        assert dp.on_connect is None
        assert dp._flush_out == dp.flush_out
        assert gc.callbacks == callbacks

    asyncio.run(body())


def test_the_variable_names_the_file_lines_are_appended_to(tmp_path: Any) -> None:
    path = tmp_path / "trace.jsonl"

    async def body() -> None:
        dp = DataPlane(asyncio.get_running_loop())
        trace = maybe_install(dp, {TRACE_ENV: str(path)})
        assert trace is not None
        try:
            assert dp.on_connect is not None
        finally:
            trace.stop()
            trace.out.close()

    asyncio.run(body())
    first = json.loads(path.read_text().splitlines()[0])
    assert first["event"] == "trace"


def test_records_late_turns_collections_batches_and_connects() -> None:
    out = io.StringIO()

    async def body() -> None:
        loop = asyncio.get_running_loop()
        dp = DataPlane(loop)
        trace = LoopTrace(dp, out, clock=lambda: 1000.0)
        trace.start()
        try:
            await asyncio.sleep(0.005)
            time.sleep(0.02)  # one loop turn that holds the loop for 20 ms
            await asyncio.sleep(0.005)

            gc.collect(1)

            transport = _Transport()
            for _ in range(50):
                dp.send(transport, b"x")  # type: ignore[arg-type]
            await asyncio.sleep(0)
            assert len(transport.written) == 50

            st = BackendState("127.0.0.1", _closed_port(), "r1")
            exchange = _Exchange()
            dp.connect(st, exchange)  # type: ignore[arg-type]
            assert await exchange.failed == st.address
        finally:
            trace.stop()
        assert dp.on_connect is None
        assert dp._flush_out == dp.flush_out

    asyncio.run(body())
    late = _events(out, "late")
    assert late and max(e["ms"] for e in late) >= 10
    assert 1 in {e["generation"] for e in _events(out, "gc")}
    assert [e["writes"] for e in _events(out, "batch")] == [50]
    (connect,) = _events(out, "connect")
    assert connect["idle"] == 0 and connect["backend"].startswith("127.0.0.1:")
    assert {e["t"] for e in _events(out, "late")} == {1000.0}
