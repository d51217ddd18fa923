"""Cookie rules on HAProxy without reloads: a fixed number of *cookie slots*.

A slot is a backend ``be_<env>_cookie<i>`` and a runtime ACL file of regular
expressions matched against the ``Cookie`` header; the frontend sends a request
to the slot when one pattern matches and the slot has a server. A table's cookie
rules are grouped by target release (in the order the rules name them): the
i-th release gets slot i, its servers in the slot's backend and one pattern per
rule in the slot's file, changed with ``add acl`` / ``del acl`` at runtime. The
config fixes only the number of slots, never cookie names or values.

Compared with the embedded router (``kiln.core.traffic.selection``): a pattern
matches the cookie wherever it appears in the header (the embedded router reads
the first cookie of a name), and when cookies of two rules for different
releases are both present, the lower slot wins (the embedded router takes the
rule whose cookie name came first in the table). Header rules (the preview)
still come first.

The runtime API's argument parser removes one level of backslashes and splits on
spaces, and kiln's client refuses ``;`` (it would chain commands), so patterns
are written with ``\\x3b`` for ``;``, ``\\s`` for blanks and every punctuation
character escaped, then each backslash doubled on the command line.
"""

from __future__ import annotations

from pathlib import Path

from kiln.core.traffic.table import CookieMatch, RouteTable

COOKIE_SLOTS = 2


def cookie_backend_name(backend: str, slot: int) -> str:
    return f"{backend}_cookie{slot}"


def _literal(text: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "\\" + c for c in text)


def cookie_regex(name: str, value: str) -> str:
    """The PCRE that matches a ``Cookie`` header carrying ``name=value`` (quoted or not)."""
    return f'(^|\\x3b)\\s*{_literal(name)}="?{_literal(value)}"?\\s*(\\x3b|$)'


def cli_argument(pattern: str) -> str:
    """``pattern`` as one runtime API argument (backslashes doubled)."""
    return pattern.replace("\\", "\\\\")


def cookie_slots(table: RouteTable | None) -> list[tuple[str, list[str]]]:
    """(release, patterns) per slot, in slot order, for ``table``'s cookie rules."""
    if table is None:
        return []
    slots: dict[str, list[str]] = {}
    for rule in table.rules:
        if isinstance(rule, CookieMatch):
            pattern = cookie_regex(rule.name, rule.value)
            patterns = slots.setdefault(rule.release, [])
            if pattern not in patterns:
                patterns.append(pattern)
    return list(slots.items())


def cookie_config(backend: str, files: tuple[Path, ...]) -> tuple[str, str]:
    """(frontend lines, backend sections) for one slot per file."""
    frontend = ""
    backends = ""
    for slot, path in enumerate(files):
        name = cookie_backend_name(backend, slot)
        frontend += (
            f"    acl kiln_cookie{slot} req.hdr(cookie) -m reg -f {path}\n"
            f"    use_backend {name} if kiln_cookie{slot} {{ nbsrv({name}) gt 0 }}\n"
        )
        backends += f"\nbackend {name}\n    balance roundrobin\n    http-reuse safe\n"
    return frontend, backends
