"""Header rules, cookie rules and sticky cookies on HAProxy without reloads.

HAProxy 2.6 refuses ``cookie`` on a dynamic server (``add server``: "'cookie'
option is not accepted for dynamic server"), and ``use-server`` names servers
when the config is parsed, so neither its cookie persistence nor a per-server
choice works on servers added at runtime. Both are built from *release
backends* and three runtime maps instead:

- ``RELEASE_SLOTS`` backends ``be_<env>_r<i>``, each holding one release's
  servers (weight 1 each) while some rule or the sticky cookie may send a
  request there;
- the **rules map** (``map_reg``): a regular expression over the request's
  header block (``req.hdrs``: lower-cased names, ``name: value`` lines ending in
  CRLF) -> the release backend. One entry per rule, header rules first, grouped
  by header name in the order the table first names them, then cookie rules
  grouped by cookie name: the first entry that matches wins, the embedded
  router's decision order (``kiln.core.traffic.selection``);
- the **sticky map**: release name -> release backend, listing only the
  releases with weight > 0 (a drained release re-sticks its clients by weight,
  as on the embedded router); the frontend looks up the sticky cookie's value;
- the **servers map**: server name -> release, read by the weighted backend to
  answer ``Set-Cookie: <cookie>=<release of the server that answered>`` on the
  requests the weights decided (never on rule or sticky hits, as embedded).

Every map is replaced whole and atomically (``prepare map`` / ``add map @V`` /
``commit map @V``): a request sees the old entries or the new, never a mix. The
servers a map entry points to are added before the entry and drained after it
is gone, so a mapped backend always has a server.

Differences from the embedded router: a header or cookie pattern matches any
occurrence of its header or cookie (the embedded router reads one), and the
cookie name and max-age of stickiness are fixed in the config (a table asking
for others is refused). The preview header keeps its own ACL and backend (the
blue/green preview port shares that backend) and is checked before these rules.

The runtime API's argument parser removes one level of backslashes and splits on
blanks, and kiln's client refuses ``;`` (it would chain commands), so patterns
are written with ``\\x3b`` for ``;``, ``\\x20``/``\\x09`` for blanks and every
punctuation character escaped, then each backslash doubled on the command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kiln.core.traffic.table import (
    DEFAULT_STICKY_COOKIE,
    CookieMatch,
    HeaderMatch,
    RouteTable,
    Sticky,
)
from kiln.errors import InvalidInput

RELEASE_SLOTS = 4
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
DEFAULT_MAX_AGE = Sticky().max_age


@dataclass(frozen=True, slots=True)
class RuleMaps:
    """The runtime maps (files HAProxy loads at start, empty) and the fixed sticky
    cookie of an HAProxy started with rules (``base_config(..., rules=...)``)."""

    rules: Path
    sticky: Path
    servers: Path
    cookie: str = DEFAULT_STICKY_COOKIE
    max_age: int = DEFAULT_MAX_AGE
    slots: int = RELEASE_SLOTS

    @classmethod
    def beside(cls, stem: Path) -> RuleMaps:
        """``<stem>.rules.map``, ``<stem>.sticky.map``, ``<stem>.servers.map``."""
        rules, sticky, servers = (stem.with_name(f"{stem.name}.{kind}.map") for kind in _KINDS)
        return cls(rules, sticky, servers)

    def files(self) -> tuple[Path, Path, Path]:
        return (self.rules, self.sticky, self.servers)


_KINDS = ("rules", "sticky", "servers")


def release_backend_name(backend: str, slot: int) -> str:
    return f"{backend}_r{slot}"


def _literal(text: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "\\" + c for c in text)


_BLANK = "[\\x20\\x09]*"


def header_regex(name: str, value: str) -> str:
    """The PCRE that matches a header block carrying ``name: value`` (name in any case)."""
    return f"(^|\\n)(?i:{_literal(name)}):{_BLANK}{_literal(value)}{_BLANK}\\r?(\\n|$)"


def cookie_regex(name: str, value: str) -> str:
    """The PCRE that matches a header block whose ``Cookie`` carries ``name=value``
    (quoted or not, first or later in the header)."""
    return (
        f"(^|\\n)cookie:([^\\r\\n]*\\x3b)?{_BLANK}{_literal(name)}="
        f'"?{_literal(value)}"?{_BLANK}(\\x3b|\\r|\\n|$)'
    )


def cli_argument(pattern: str) -> str:
    """``pattern`` as one runtime API argument (backslashes doubled)."""
    return pattern.replace("\\", "\\\\")


def mapped_rules(
    table: RouteTable | None, preview_header: str | None = None
) -> list[tuple[str, str]]:
    """(pattern, release) per map entry, in decision order, for ``table``'s rules
    except the first header rule on ``preview_header`` (the preview ACL's)."""
    if table is None:
        return []
    headers: dict[str, list[tuple[str, str]]] = {}
    cookies: dict[str, list[tuple[str, str]]] = {}
    skipped = False
    for rule in table.rules:
        if isinstance(rule, HeaderMatch):
            if (
                not skipped
                and preview_header is not None
                and rule.name.lower() == preview_header.lower()
            ):
                skipped = True
                continue
            entry = (header_regex(rule.name.lower(), rule.value), rule.release)
            headers.setdefault(rule.name.lower(), []).append(entry)
        elif isinstance(rule, CookieMatch):
            entry = (cookie_regex(rule.name, rule.value), rule.release)
            cookies.setdefault(rule.name, []).append(entry)
    out: list[tuple[str, str]] = []
    for group in (*headers.values(), *cookies.values()):
        for entry in group:
            if all(entry[0] != seen for seen, _ in out):  # the first rule of a value wins
                out.append(entry)
    return out


def sticky_releases(table: RouteTable | None) -> list[str]:
    """The releases a sticky cookie keeps its clients on: weight > 0, with backends."""
    if table is None or table.sticky is None:
        return []
    return [r.name for r in table.releases if r.weight > 0 and r.backends]


def release_slots(table: RouteTable | None, preview_header: str | None = None) -> list[str]:
    """The releases that need a release backend, slot i holding the i-th."""
    out: list[str] = []
    for _, release in mapped_rules(table, preview_header):
        if release not in out:
            out.append(release)
    for release in sticky_releases(table):
        if release not in out:
            out.append(release)
    return out


def rules_config(backend: str, maps: RuleMaps) -> tuple[str, str, str, str]:
    """(frontend ``http-request`` lines, frontend ``use_backend`` lines, weighted
    backend lines, release backend sections) of the config."""
    if not _TOKEN.fullmatch(maps.cookie):
        raise InvalidInput(f"sticky cookie {maps.cookie!r} is not a cookie name")
    variables = (
        f"    http-request set-var(txn.kiln_rule) req.hdrs,map_reg({maps.rules})\n"
        f"    http-request set-var(txn.kiln_sticky) req.cook({maps.cookie}),map({maps.sticky})\n"
    )
    routes = (
        "    use_backend %[var(txn.kiln_rule)] if { var(txn.kiln_rule) -m found }\n"
        "    use_backend %[var(txn.kiln_sticky)] if { var(txn.kiln_sticky) -m found }\n"
    )
    weighted = (
        f'    http-response add-header Set-Cookie "{maps.cookie}=%[srv_name,map({maps.servers})]; '
        f'Path=/; Max-Age={maps.max_age}; HttpOnly; SameSite=Lax" '
        f"if {{ srv_name,map({maps.servers}) -m found }}\n"
    )
    sections = "".join(
        f"\nbackend {release_backend_name(backend, slot)}\n    balance roundrobin\n"
        "    http-reuse safe\n"
        for slot in range(maps.slots)
    )
    return variables, routes, weighted, sections
