"""Opt-in stall tracing of the router's event loop (off unless asked for).

``kiln router`` with ``KILN_ROUTER_TRACE=/some/file`` appends one JSON line per
notable event to that file, for hunting tail latency (docs/data-plane.md, "Where
the tail comes from"):

- ``late``: a 1 ms heartbeat callback ran at least ``threshold`` late, i.e. a loop
  turn (or the process being off the CPU) took that long;
- ``gc``: each garbage collection, its generation and duration;
- ``batch``: a send batch (``DataPlane.flush_out``) of unusual size or duration;
- ``connect``: an upstream connection opened because no idle one was pooled.

Every line carries ``t`` (wall-clock seconds, to line up with a load generator's
timeline). Events are rare, so each line is written and flushed at once: the
router is usually ended by a signal and must not lose what it saw. Nothing is
added to the per-request path when tracing is off: the hooks are installed only
here.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any, TextIO

from kiln.adapters.traffic.embedded.proxy import DataPlane

TRACE_ENV = "KILN_ROUTER_TRACE"
HEARTBEAT = 0.001
LATE_MS = 2.0
BATCH_WRITES = 40
BATCH_MS = 1.0


class LoopTrace:
    """Writes the events above for one data plane to ``out``."""

    def __init__(
        self,
        dp: DataPlane,
        out: TextIO,
        *,
        late_ms: float = LATE_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dp = dp
        self.out = out
        self.late_ms = late_ms
        self.clock = clock
        self._gc_started = 0
        self._due = 0.0
        self._flush_plain = dp.flush_out

    def emit(self, event: str, **fields: Any) -> None:
        self.out.write(json.dumps({"event": event, "t": self.clock(), **fields}) + "\n")
        self.out.flush()

    def start(self) -> None:
        dp = self.dp
        gc.callbacks.append(self._gc)
        dp._flush_out = self._flush_timed
        dp.on_connect = self._connect
        self._due = dp.loop.time() + HEARTBEAT
        dp.loop.call_later(HEARTBEAT, self._beat)
        self.emit("trace", heartbeat_ms=HEARTBEAT * 1e3, late_ms=self.late_ms)

    def stop(self) -> None:
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        self.dp._flush_out = self._flush_plain
        self.dp.on_connect = None

    # -- hooks --------------------------------------------------------------------
    def _beat(self) -> None:
        loop = self.dp.loop
        now = loop.time()
        late_ms = (now - self._due) * 1e3
        if late_ms >= self.late_ms:
            self.emit("late", ms=round(late_ms, 3), in_flight=self.dp.in_flight)
        self._due = now + HEARTBEAT
        loop.call_later(HEARTBEAT, self._beat)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = perf_counter_ns()
            return
        self.emit(
            "gc",
            generation=info["generation"],
            ms=round((perf_counter_ns() - self._gc_started) / 1e6, 3),
            collected=info.get("collected", 0),
        )

    def _flush_timed(self) -> None:
        writes = len(self.dp.outbox)
        began = perf_counter_ns()
        self._flush_plain()
        ms = (perf_counter_ns() - began) / 1e6
        if writes >= BATCH_WRITES or ms >= BATCH_MS:
            self.emit("batch", writes=writes, ms=round(ms, 3))

    def _connect(self, address: str, idle: int) -> None:
        self.emit("connect", backend=address, idle=idle, in_flight=self.dp.in_flight)


def install(dp: DataPlane, path: str) -> LoopTrace:
    """Start tracing ``dp`` into ``path`` (appended, line-buffered)."""
    trace = LoopTrace(dp, open(path, "a", buffering=1, encoding="utf-8"))  # noqa: SIM115
    trace.start()
    return trace


def maybe_install(dp: DataPlane, environ: dict[str, str]) -> LoopTrace | None:
    path = environ.get(TRACE_ENV)
    if not path:
        return None
    return install(dp, path)


__all__ = ["TRACE_ENV", "LoopTrace", "install", "maybe_install"]
