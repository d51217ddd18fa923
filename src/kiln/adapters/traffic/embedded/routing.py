"""Routing state of the embedded router, rebuilt for every table.

``Routes`` is the per-table view the hot path reads (weighted slots as ``Target``
objects, rules keyed by bytes); it is replaced whole on every apply. A
``BackendState`` (pool + passive health) lives as long as its backend stays in
some table, so health and warm connections survive weight changes.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from kiln.adapters.traffic.embedded.stats import ReleaseStats
from kiln.core.traffic.selection import Plan

if TYPE_CHECKING:
    from kiln.adapters.traffic.embedded.upstream import UpstreamConnection

MAX_IDLE_PER_BACKEND = 256
# Hop-by-hop headers (RFC 9110 §7.6.1); headers named in Connection are added per message.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


BEGUN, DONE = 1, 2
ONE_MESSAGE = [BEGUN, DONE]


class Marks:
    """The callbacks of a checking parser: one mark per message begun and per message
    completed, so ``marks == ONE_MESSAGE`` after a feed means "exactly one whole
    message, nothing after it".

    The fast paths feed raw bytes to a second parser built on such an object: llhttp
    validates the syntax strictly (no bare CR or LF, no obs-fold, no space before a
    colon, one Content-Length) while Python runs no code per header. The callbacks
    are ``list.append`` bound by ``functools.partial``, callables written in C: no
    Python frame per message either (about 700 instructions per request fewer,
    ``benchmarks/bench_router_cpu.py``)."""

    __slots__ = ("marks", "on_message_begin", "on_message_complete")

    def __init__(self) -> None:
        self.marks: list[int] = []
        self.on_message_begin = partial(self.marks.append, BEGUN)
        self.on_message_complete = partial(self.marks.append, DONE)


class BackendState:
    """One backend's upstream pool and passive health; survives table swaps while the
    backend stays in the table."""

    __slots__ = (
        "address",
        "failures",
        "host",
        "idle",
        "port",
        "probing",
        "release",
        "retired",
        "up",
    )

    def __init__(self, host: str, port: int, release: str) -> None:
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.release = release
        self.idle: list[UpstreamConnection] = []
        self.up = True
        self.failures = 0
        self.retired = False
        self.probing = False

    def take_idle(self) -> UpstreamConnection | None:
        idle = self.idle
        while idle:
            conn = idle.pop()
            if conn.open:
                return conn
        return None

    def give_back(self, conn: UpstreamConnection) -> None:
        if self.retired or len(self.idle) >= MAX_IDLE_PER_BACKEND:
            conn.close()
        else:
            self.idle.append(conn)

    def retire(self) -> None:
        self.retired = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class Target:
    """A release as routed by one table: its backends, round-robin index and counters."""

    __slots__ = ("backends", "name", "rr", "set_cookie", "stats")

    def __init__(
        self,
        name: str,
        backends: tuple[BackendState, ...],
        stats: ReleaseStats,
        set_cookie: bytes,
    ) -> None:
        self.name = name
        self.backends = backends
        self.rr = 0
        self.stats = stats
        self.set_cookie = set_cookie

    def pick(self, tried: list[BackendState] | None) -> BackendState | None:
        backends = self.backends
        n = len(backends)
        for _ in range(n):
            st = backends[self.rr % n]
            self.rr += 1
            if st.up and (tried is None or st not in tried):
                return st
        # Every backend ejected: try one anyway rather than refuse outright.
        for st in backends:
            if tried is None or st not in tried:
                return st
        return None


class Routes:
    """The routing view of one table; replaced whole, never mutated (except rr indices)."""

    __slots__ = (
        "cookie_rules",
        "generation",
        "header_rules",
        "mirror",
        "mirror_mask",
        "needs_cookies",
        "plain",
        "plan",
        "slots",
        "sticky_cookie",
        "sticky_targets",
        "targets",
    )

    def __init__(self, plan: Plan, targets: dict[str, Target]) -> None:
        self.plan = plan
        self.generation = plan.generation
        self.targets = targets
        self.slots = tuple(targets[name] for name in plan.slots)
        self.header_rules = {
            name.encode("latin-1"): {v.encode("latin-1"): targets[r] for v, r in rules.items()}
            for name, rules in plan.header_rules.items()
        }
        self.cookie_rules = {
            name: {v: targets[r] for v, r in rules.items()}
            for name, rules in plan.cookie_rules.items()
        }
        self.sticky_cookie = plan.sticky_cookie
        self.sticky_targets = {name: targets[name] for name in plan.sticky_targets}
        self.needs_cookies = bool(self.cookie_rules) or self.sticky_cookie is not None
        self.mirror = targets[plan.mirror_release] if plan.mirror_release else None
        self.mirror_mask = plan.mirror_mask
        # Requests need no header inspection beyond Host: the client fast path applies.
        self.plain = bool(self.slots) and not self.header_rules and not self.needs_cookies

    def pick_other(self, tried: list[BackendState]) -> tuple[Target, BackendState] | None:
        for target in self.targets.values():
            st = target.pick(tried)
            if st is not None:
                return target, st
        return None


def _no_routes() -> Routes:
    """An empty view used when no table was ever applied: every request gets 503."""
    routes = Routes.__new__(Routes)
    routes.targets = {}
    routes.slots = ()
    routes.plain = False
    return routes


EMPTY_ROUTES = _no_routes()
