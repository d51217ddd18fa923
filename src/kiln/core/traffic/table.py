"""The route table: how one environment's traffic is split across its releases.

A table is immutable and carries a ``generation``; routers refuse a table older
than the one they serve, so a delayed push can never undo a newer decision.
Invariants are checked in the constructor (every problem at once, as a
``SpecError``), so a ``RouteTable`` that exists is a valid one:

- weights are integers 0..100 and the releases that have backends sum to 100;
  a release without backends must weigh 0 (it may still be a mirror or rule
  target only once it has backends);
- a backend ``host:port`` appears once in the whole table (metrics and the
  HAProxy server names map a backend to exactly one release);
- header/cookie rules and the mirror name a release that has backends;
- a listener (``listeners``: "port P serves release R only", the blue/green
  preview port) names a release that has backends, a port in 1..65535, and no
  port twice. Weights and rules do not apply on such a port.

``to_json`` is the canonical form (sorted keys, no spaces, UTF-8): it is what the
embedded router persists and what the admin API exchanges, so equal tables are
equal bytes. ``listeners`` is written only when there is one, so a table without
them has the same bytes as before the field existed, and a persisted table that
lacks the field reads as having none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from kiln.core.canonical import canonical_json
from kiln.errors import InvalidInput, Problem, Refused, SpecError, StaleLeader

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
# RFC 9110 §5.6.2 token characters, used for header and cookie names.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOST = re.compile(r"^[A-Za-z0-9._-]{1,253}$|^\[[0-9A-Fa-f:.]+\]$")
# Cookie values per RFC 6265 §4.1.1 cookie-octet (no spaces, quotes, commas, ;, \).
_COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$")

DEFAULT_STICKY_COOKIE = "kiln_release"


@dataclass(frozen=True, slots=True)
class Backend:
    """One instance a router may send requests to."""

    host: str
    port: int

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not _HOST.match(self.host):
            raise InvalidInput(f"backend host {self.host!r} is not a host name or address")
        if not isinstance(self.port, int) or isinstance(self.port, bool):
            raise InvalidInput(f"backend port {self.port!r} is not an integer")
        if not 1 <= self.port <= 65535:
            raise InvalidInput(f"backend port {self.port} is outside 1..65535")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Backend:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise InvalidInput(
                f"backend {text!r} is not host:port", hint="write it like 127.0.0.1:8080"
            )
        return cls(host, int(port))


@dataclass(frozen=True, slots=True)
class Release:
    """A release's share of traffic and the instances that serve it."""

    name: str
    weight: int
    backends: tuple[Backend, ...] = ()


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """Requests carrying header ``name`` equal to ``value`` go to ``release`` (preview, A/B)."""

    name: str
    value: str
    release: str


@dataclass(frozen=True, slots=True)
class CookieMatch:
    """Requests carrying cookie ``name`` equal to ``value`` go to ``release``."""

    name: str
    value: str
    release: str


Rule = HeaderMatch | CookieMatch


@dataclass(frozen=True, slots=True)
class Sticky:
    """Keep a client on the release it first landed on, by a cookie naming the release."""

    cookie: str = DEFAULT_STICKY_COOKIE
    max_age: int = 3600


@dataclass(frozen=True, slots=True)
class Mirror:
    """Copy ``percent`` % of bodiless requests to ``release``; its answers are discarded."""

    release: str
    percent: int = 100


@dataclass(frozen=True, slots=True)
class Listener:
    """A listener of its own on ``port`` (the router's bind host) that sends every
    request to ``release``: the blue/green preview port."""

    port: int
    release: str


@dataclass(frozen=True)
class RouteTable:
    generation: int
    environment: str
    releases: tuple[Release, ...]
    rules: tuple[Rule, ...] = ()
    sticky: Sticky | None = None
    mirror: Mirror | None = None
    listeners: tuple[Listener, ...] = ()
    _by_name: dict[str, Release] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise SpecError(problems, source="route table")
        object.__setattr__(self, "_by_name", {r.name: r for r in self.releases})

    def release(self, name: str) -> Release | None:
        return self._by_name.get(name)

    @property
    def backends(self) -> tuple[tuple[str, Backend], ...]:
        """Every (release name, backend) pair, in table order."""
        return tuple((r.name, b) for r in self.releases for b in r.backends)

    def with_generation(self, generation: int) -> RouteTable:
        return RouteTable(
            generation,
            self.environment,
            self.releases,
            self.rules,
            self.sticky,
            self.mirror,
            self.listeners,
        )

    def listener(self, port: int) -> Listener | None:
        return next((item for item in self.listeners if item.port == port), None)

    def to_dict(self) -> dict[str, Any]:
        out = self._to_dict()
        if self.listeners:
            out["listeners"] = [{"port": i.port, "release": i.release} for i in self.listeners]
        return out

    def _to_dict(self) -> dict[str, Any]:
        rules: list[dict[str, str]] = []
        for rule in self.rules:
            kind = "header" if isinstance(rule, HeaderMatch) else "cookie"
            rules.append(
                {"kind": kind, "name": rule.name, "value": rule.value, "release": rule.release}
            )
        return {
            "generation": self.generation,
            "environment": self.environment,
            "releases": [
                {
                    "name": r.name,
                    "weight": r.weight,
                    "backends": [b.address for b in r.backends],
                }
                for r in self.releases
            ],
            "rules": rules,
            "sticky": (
                None
                if self.sticky is None
                else {"cookie": self.sticky.cookie, "max_age": self.sticky.max_age}
            ),
            "mirror": (
                None
                if self.mirror is None
                else {"release": self.mirror.release, "percent": self.mirror.percent}
            ),
        }

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())


TERM_SHIFT = 32
"""A leader in term ``e`` numbers its tables from ``e << TERM_SHIFT``: 2**32 tables
per term, and epochs below 2**21 keep generations exact as floats (2**53)."""


def next_generation(current: RouteTable | None, epoch: int | None) -> int:
    """The generation of the next table pushed over ``current`` by the leader of term
    ``epoch`` (None: an unfenced pusher, one above the current).

    The term sits in the high bits, so any table of a newer term outranks every
    table of an older one: a stale leader's push is refused by the router's own
    generation rule once its successor has pushed. ``StaleLeader`` when the
    served table already comes from a newer term."""
    after = (current.generation if current is not None else 0) + 1
    if epoch is None:
        return after
    if current is not None and current.generation >> TERM_SHIFT > epoch:
        raise StaleLeader(
            f"{current.environment}: the router serves a table of term "
            f"{current.generation >> TERM_SHIFT}, newer than this controller's term {epoch}",
            hint="another controller leads it now; this one stands down",
        )
    return max(after, epoch << TERM_SHIFT)


def must_install(current: RouteTable | None, new: RouteTable) -> bool:
    """The generation rule every router follows: True if ``new`` must be installed,
    False if it is the served table again; raises ``Refused`` if it would go back."""
    if current is None or new.generation > current.generation:
        return True
    if new.generation == current.generation and new.to_json() == current.to_json():
        return False
    raise Refused(
        f"route table generation {new.generation} is not newer than the served "
        f"generation {current.generation}",
        hint="read the current table and push a higher generation",
    )


def from_json(data: bytes | str) -> RouteTable:
    """Parse canonical (or any equivalent) JSON into a validated table."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"route table is not JSON: {exc}") from exc
    return from_dict(raw)


def from_dict(raw: object) -> RouteTable:
    if not isinstance(raw, dict):
        raise InvalidInput("route table must be a JSON object")
    unknown = set(raw) - {
        "generation",
        "environment",
        "releases",
        "rules",
        "sticky",
        "mirror",
        "listeners",
    }
    if unknown:
        raise InvalidInput(f"route table has unknown fields: {', '.join(sorted(unknown))}")
    try:
        releases = tuple(
            Release(
                name=_str(r, "name"),
                weight=_int(r, "weight"),
                backends=tuple(Backend.parse(str(b)) for b in _list(r, "backends")),
            )
            for r in _list(raw, "releases")
        )
        rules: list[Rule] = []
        for item in raw.get("rules") or []:
            kind = _str(item, "kind")
            args = (_str(item, "name"), _str(item, "value"), _str(item, "release"))
            if kind == "header":
                rules.append(HeaderMatch(*args))
            elif kind == "cookie":
                rules.append(CookieMatch(*args))
            else:
                raise InvalidInput(f"rule kind {kind!r} is not header or cookie")
        sticky_raw = raw.get("sticky")
        sticky = (
            None
            if sticky_raw is None
            else Sticky(_str(sticky_raw, "cookie"), _int(sticky_raw, "max_age"))
        )
        mirror_raw = raw.get("mirror")
        mirror = (
            None
            if mirror_raw is None
            else Mirror(_str(mirror_raw, "release"), _int(mirror_raw, "percent"))
        )
        listeners = tuple(
            Listener(_int(item, "port"), _str(item, "release")) for item in _list(raw, "listeners")
        )
        return RouteTable(
            generation=_int(raw, "generation"),
            environment=_str(raw, "environment"),
            releases=releases,
            rules=tuple(rules),
            sticky=sticky,
            mirror=mirror,
            listeners=listeners,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"route table is malformed: {exc}") from exc


def _str(obj: Any, key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise InvalidInput(f"route table field {key!r} must be a string")
    return value


def _int(obj: Any, key: str) -> int:
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"route table field {key!r} must be an integer")
    return value


def _list(obj: Any, key: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise InvalidInput(f"route table field {key!r} must be a list")
    return value


def _problems(table: RouteTable) -> list[Problem]:
    out: list[Problem] = []

    def bad(path: str, message: str, hint: str = "") -> None:
        out.append(Problem(message, path=path, hint=hint))

    if not isinstance(table.generation, int) or table.generation < 0:
        bad("generation", "must be an integer >= 0")
    if not _NAME.match(table.environment or ""):
        bad("environment", f"{table.environment!r} is not a valid name")
    names: set[str] = set()
    serving: set[str] = set()
    seen_backends: dict[str, str] = {}
    total = 0
    for i, rel in enumerate(table.releases):
        where = f"releases[{i}]"
        if not _NAME.match(rel.name or ""):
            bad(f"{where}.name", f"{rel.name!r} is not a valid release name")
        if rel.name in names:
            bad(f"{where}.name", f"release {rel.name!r} appears twice")
        names.add(rel.name)
        if not isinstance(rel.weight, int) or isinstance(rel.weight, bool):
            bad(f"{where}.weight", "must be an integer")
            continue
        if not 0 <= rel.weight <= 100:
            bad(f"{where}.weight", f"{rel.weight} is outside 0..100")
        for backend in rel.backends:
            owner = seen_backends.get(backend.address)
            if owner is not None:
                bad(
                    f"{where}.backends",
                    f"backend {backend.address} already belongs to release {owner!r}",
                    hint="an instance serves exactly one release",
                )
            seen_backends[backend.address] = rel.name
        if rel.backends:
            serving.add(rel.name)
            total += rel.weight
        elif rel.weight:
            bad(
                f"{where}.weight",
                f"release {rel.name!r} has weight {rel.weight} but no backends",
                hint="give it instances first, or weight 0",
            )
    if total != 100:
        bad(
            "releases",
            f"weights of releases with backends sum to {total}, not 100",
            hint="a table must send all traffic somewhere; at least one release needs backends",
        )
    for i, rule in enumerate(table.rules):
        if not _TOKEN.match(rule.name or ""):
            bad(f"rules[{i}].name", f"{rule.name!r} is not a valid header or cookie name")
        if isinstance(rule, CookieMatch) and not _COOKIE_VALUE.match(rule.value):
            bad(f"rules[{i}].value", f"{rule.value!r} is not a valid cookie value")
        if "\r" in rule.value or "\n" in rule.value:
            bad(f"rules[{i}].value", "must not contain line breaks")
        if rule.release not in serving:
            bad(f"rules[{i}].release", f"release {rule.release!r} is absent or has no backends")
    if table.sticky is not None:
        if not _TOKEN.match(table.sticky.cookie or ""):
            bad("sticky.cookie", f"{table.sticky.cookie!r} is not a valid cookie name")
        if not isinstance(table.sticky.max_age, int) or table.sticky.max_age <= 0:
            bad("sticky.max_age", "must be a positive number of seconds")
    if table.mirror is not None:
        if table.mirror.release not in serving:
            bad("mirror.release", f"release {table.mirror.release!r} is absent or has no backends")
        if not isinstance(table.mirror.percent, int) or not 1 <= table.mirror.percent <= 100:
            bad("mirror.percent", "must be an integer 1..100")
    ports: set[int] = set()
    for i, item in enumerate(table.listeners):
        where = f"listeners[{i}]"
        port = item.port
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            bad(f"{where}.port", f"{port!r} is not a port 1..65535")
        elif port in ports:
            bad(f"{where}.port", f"port {port} is listed twice", hint="one release per port")
        else:
            ports.add(port)
        if item.release not in serving:
            bad(
                f"{where}.release",
                f"release {item.release!r} is absent or has no backends",
                hint="a listener opens only for a release with ready instances",
            )
    return out
