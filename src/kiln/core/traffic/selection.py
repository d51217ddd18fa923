"""The per-request routing decision, precomputed once per table so each request
costs O(1): one tuple index for the weighted choice, one dict lookup per rule.

``compile_plan`` unrolls nginx's *smooth weighted round-robin* over one cycle
(the weights reduced by their gcd, so at most 100 slots): releases are
interleaved as evenly as possible (weights 90/10 give nine of one, then one of
the other, spread out, never ten in a row of the small one), and the exact split
holds over every window of one cycle. A router keeps an integer counter and
reads ``plan.slots[counter % len(plan.slots)]``; the plan itself stays pure.

The decision order for one request is:
1. a header or cookie rule that matches (preview URLs, A/B cohorts);
2. the sticky cookie, if it names a release that still has weight > 0;
3. the weighted slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import gcd
from types import MappingProxyType

from kiln.core.traffic.table import Backend, CookieMatch, HeaderMatch, RouteTable


def smooth_weighted_cycle(weights: Sequence[int]) -> tuple[int, ...]:
    """Indices of ``weights`` in smooth weighted round-robin order for one cycle.

    Zero weights never appear. The cycle length is ``sum(weights) / gcd(weights)``.
    """
    live = [w for w in weights if w > 0]
    if not live:
        return ()
    divisor = 0
    for w in live:
        divisor = gcd(divisor, w)
    reduced = [w // divisor if w > 0 else 0 for w in weights]
    total = sum(reduced)
    current = [0] * len(reduced)
    order: list[int] = []
    for _ in range(total):
        best = -1
        for i, w in enumerate(reduced):
            if w == 0:
                continue
            current[i] += w
            if best < 0 or current[i] > current[best]:
                best = i
        current[best] -= total
        order.append(best)
    return tuple(order)


@dataclass(frozen=True)
class Plan:
    """Everything a router needs per request, precomputed from one table."""

    table: RouteTable
    slots: tuple[str, ...]
    backends: Mapping[str, tuple[Backend, ...]]
    header_rules: Mapping[str, Mapping[str, str]]
    cookie_rules: Mapping[str, Mapping[str, str]]
    sticky_cookie: str | None
    sticky_targets: frozenset[str]
    mirror_release: str | None
    mirror_mask: tuple[bool, ...]

    @property
    def generation(self) -> int:
        return self.table.generation

    def weighted(self, counter: int) -> str:
        return self.slots[counter % len(self.slots)]

    def mirrors(self, counter: int) -> bool:
        return bool(self.mirror_mask) and self.mirror_mask[counter % len(self.mirror_mask)]

    def choose(
        self,
        counter: int,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> str:
        """The release for one request (reference implementation of the decision order).

        ``headers`` keys are lower-case. Routers inline the same steps on their
        own parsed representation; this function is what the tests pin down.
        """
        if headers:
            for name, by_value in self.header_rules.items():
                value = headers.get(name)
                if value is not None and value in by_value:
                    return by_value[value]
        if cookies:
            for name, by_value in self.cookie_rules.items():
                value = cookies.get(name)
                if value is not None and value in by_value:
                    return by_value[value]
            if self.sticky_cookie is not None:
                stuck = cookies.get(self.sticky_cookie)
                if stuck is not None and stuck in self.sticky_targets:
                    return stuck
        return self.weighted(counter)


def compile_plan(table: RouteTable) -> Plan:
    serving = [r for r in table.releases if r.backends]
    cycle = smooth_weighted_cycle([r.weight for r in serving])
    header_rules: dict[str, dict[str, str]] = {}
    cookie_rules: dict[str, dict[str, str]] = {}
    for rule in table.rules:
        if isinstance(rule, HeaderMatch):
            header_rules.setdefault(rule.name.lower(), {}).setdefault(rule.value, rule.release)
        elif isinstance(rule, CookieMatch):
            cookie_rules.setdefault(rule.name, {}).setdefault(rule.value, rule.release)
    mirror_mask: tuple[bool, ...] = ()
    if table.mirror is not None:
        pct = table.mirror.percent
        mirror_mask = tuple(i == 0 for i in smooth_weighted_cycle([pct, 100 - pct]))
    return Plan(
        table=table,
        slots=tuple(serving[i].name for i in cycle),
        backends=MappingProxyType({r.name: r.backends for r in table.releases}),
        header_rules=MappingProxyType({k: MappingProxyType(v) for k, v in header_rules.items()}),
        cookie_rules=MappingProxyType({k: MappingProxyType(v) for k, v in cookie_rules.items()}),
        sticky_cookie=table.sticky.cookie if table.sticky else None,
        sticky_targets=frozenset(r.name for r in serving if r.weight > 0),
        mirror_release=table.mirror.release if table.mirror else None,
        mirror_mask=mirror_mask,
    )


def listener_plan(table: RouteTable, release: str) -> Plan:
    """The plan of a listener that serves ``release`` only (the preview port): every
    slot is that release; no rules, stickiness or mirroring apply there."""
    backends = next((r.backends for r in table.releases if r.name == release), ())
    return Plan(
        table=table,
        slots=(release,),
        backends=MappingProxyType({release: backends}),
        header_rules=MappingProxyType({}),
        cookie_rules=MappingProxyType({}),
        sticky_cookie=None,
        sticky_targets=frozenset(),
        mirror_release=None,
        mirror_mask=(),
    )


def parse_cookie_header(value: str) -> dict[str, str]:
    """Cookie pairs of one ``Cookie`` header (RFC 6265 §5.4); the first of a name wins."""
    out: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, val = part.strip().partition("=")
        if sep and name and name not in out:
            out[name] = val.strip('"')
    return out
