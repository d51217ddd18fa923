"""OSV advisories: parsing, version matching and severity.

Follows the OSV schema (https://ossf.github.io/osv-schema/, v1.6): an advisory
has ``affected[]`` entries naming a package (ecosystem + name) with affected
``versions`` and ``ranges``. A version is affected if it is listed in
``versions`` or lies inside any range (schema section "Evaluation"):

    for each range whose limits admit v (an implicit ``limit: "*"``):
        vulnerable = false
        for each event, sorted by version ("0" sorts first):
            introduced    and v >= introduced    -> vulnerable = true
            fixed         and v >= fixed         -> vulnerable = false
            last_affected and v >  last_affected -> vulnerable = false

Only the PyPI ecosystem is matched (kiln builds Python apps): ``ECOSYSTEM``
ranges compare with PEP 440, ``SEMVER`` ranges with SemVer 2.0.0 precedence.
``GIT`` ranges need a repository's commit graph and are ignored; the schema
requires a ``versions`` list next to them, which we do read. Withdrawn
advisories are skipped.

Parsing is pure: the service reads files and hands us ``(bytes, source)``;
every problem raises ``InvalidInput`` naming the source file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kiln.core.gates.cvss import base_score, base_score_v2, rating, rating_v2
from kiln.core.gates.versions import normalize_name, parse_pep440, parse_semver
from kiln.core.spec.models import Severity
from kiln.errors import InvalidInput

PYPI = "PyPI"
EventKind = Literal["introduced", "fixed", "last_affected", "limit"]
_EVENT_KINDS: tuple[EventKind, ...] = ("introduced", "fixed", "last_affected", "limit")

# Severity labels seen in OSV databases' database_specific / ecosystem_specific
# blocks (GitHub's advisory database says MODERATE for medium).
_LABELS = {
    "low": Severity.LOW,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "important": Severity.HIGH,
    "critical": Severity.CRITICAL,
}

# Ranking used against the threshold. "unknown" outranks everything: an advisory
# whose severity we cannot establish blocks at every threshold (fail closed),
# and is shown as "unknown" rather than dressed up as high or critical.
RANK = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4, "unknown": 5}


@dataclass(frozen=True)
class Event:
    kind: EventKind
    version: str


@dataclass(frozen=True)
class Range:
    type: str
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Affected:
    ecosystem: str
    name: str  # PEP 503-normalised for PyPI
    ranges: tuple[Range, ...]
    versions: tuple[str, ...]
    severity: str  # "low" .. "critical", "none" or "unknown"
    severity_basis: str


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    affected: tuple[Affected, ...]
    source: str
    withdrawn: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


class Undecidable(Exception):
    """A version could not be compared with an advisory's range."""


# --- parsing -----------------------------------------------------------------------


def parse_database(data: bytes, source: str) -> list[Advisory]:
    """Parse one OSV JSON document: one advisory, or a JSON list of advisories."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"{source}: not valid JSON ({exc})",
            hint="an OSV file holds one JSON advisory or a list",
        ) from None
    items = doc if isinstance(doc, list) else [doc]
    return [
        _advisory(item, f"{source}[{i}]" if isinstance(doc, list) else source)
        for i, item in enumerate(items)
    ]


def _advisory(raw: Any, where: str) -> Advisory:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: an OSV advisory must be a JSON object")
    ident = raw.get("id")
    if not isinstance(ident, str) or not ident:
        raise InvalidInput(f"{where}: advisory has no 'id'", hint="see ossf.github.io/osv-schema")
    here = f"{where} ({ident})"
    # The schema's validation file allows null for aliases, severity and affected.
    aliases = _strings(raw.get("aliases") or [], f"{here}: aliases")
    top = _severity_from(raw.get("severity"), raw.get("database_specific"), here)
    affected_raw = raw.get("affected") or []
    if not isinstance(affected_raw, list):
        raise InvalidInput(f"{here}: 'affected' must be a list")
    affected = tuple(
        _affected(item, top, f"{here}: affected[{i}]") for i, item in enumerate(affected_raw)
    )
    withdrawn = raw.get("withdrawn")
    summary = raw.get("summary", "")
    return Advisory(
        id=ident,
        aliases=tuple(aliases),
        summary=summary if isinstance(summary, str) else "",
        affected=affected,
        source=where,
        withdrawn=withdrawn if isinstance(withdrawn, str) else None,
    )


def _affected(raw: Any, top: tuple[str, str], where: str) -> Affected:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: must be an object")
    package = raw.get("package")
    if (
        not isinstance(package, dict)
        or not isinstance(package.get("ecosystem"), str)
        or not isinstance(package.get("name"), str)
    ):
        raise InvalidInput(f"{where}: package needs 'ecosystem' and 'name' strings")
    ecosystem = package["ecosystem"]
    name = normalize_name(package["name"]) if ecosystem == PYPI else package["name"]
    ranges_raw = raw.get("ranges") or []
    if not isinstance(ranges_raw, list):
        raise InvalidInput(f"{where}: 'ranges' must be a list")
    ranges = tuple(_range(r, ecosystem, f"{where}.ranges[{i}]") for i, r in enumerate(ranges_raw))
    versions = tuple(_strings(raw.get("versions") or [], f"{where}.versions"))
    local = _severity_from(raw.get("severity"), raw.get("ecosystem_specific"), where)
    # A package-level severity is more specific than the advisory's; when both
    # exist we keep the higher so a disagreement never lowers the bar.
    if local[0] == "unknown":
        severity, basis = top
    elif top[0] == "unknown":
        severity, basis = local
    else:
        severity, basis = max((top, local), key=lambda s: RANK[s[0]])
    return Affected(ecosystem, name, ranges, versions, severity, basis)


def _range(raw: Any, ecosystem: str, where: str) -> Range:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise InvalidInput(f"{where}: a range needs a 'type'")
    kind = raw["type"]
    events_raw = raw.get("events")
    if not isinstance(events_raw, list) or not events_raw:
        raise InvalidInput(f"{where}: a range needs a non-empty 'events' list")
    events: list[Event] = []
    for i, item in enumerate(events_raw):
        if not isinstance(item, dict) or len(item) != 1:
            raise InvalidInput(f"{where}.events[{i}]: each event has exactly one key")
        ((key, value),) = item.items()
        if key not in _EVENT_KINDS or not isinstance(value, str):
            raise InvalidInput(f"{where}.events[{i}]: unknown event {key!r}")
        events.append(Event(key, value))
    if not any(e.kind == "introduced" for e in events):
        raise InvalidInput(f"{where}: a range needs at least one 'introduced' event (OSV schema)")
    parse = _native_parser(kind, ecosystem)
    if parse is not None:
        for event in events:
            if _special(event):
                continue
            if parse(event.version) is None:
                raise InvalidInput(
                    f"{where}: {event.kind} version {event.version!r} is not a valid "
                    f"{'SemVer' if kind == 'SEMVER' else 'PEP 440'} version"
                )
    return Range(kind, tuple(events))


def _native_parser(kind: str, ecosystem: str) -> Callable[[str], Any] | None:
    if kind == "SEMVER":
        return parse_semver
    if kind == "ECOSYSTEM" and ecosystem == PYPI:
        return parse_pep440
    return None


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{where} must be a list of strings")
    return list(value)


def _severity_from(scores: Any, specific: Any, where: str) -> tuple[str, str]:
    """The highest severity we can establish from CVSS v3/v2 vectors and labels."""
    found: list[tuple[str, str]] = []
    if isinstance(scores, list):
        for entry in scores:
            if not isinstance(entry, dict):
                raise InvalidInput(f"{where}: severity entries must be objects")
            kind, vector = entry.get("type"), entry.get("score")
            if kind not in ("CVSS_V3", "CVSS_V2") or not isinstance(vector, str):
                continue
            try:
                if kind == "CVSS_V3":
                    score = base_score(vector)
                    level, label = rating(score), f"CVSS {score:.1f}"
                else:
                    score = base_score_v2(vector)
                    level, label = rating_v2(score), f"CVSS v2 {score:.1f}"
            except InvalidInput as exc:
                raise InvalidInput(f"{where}: {exc.message}") from None
            found.append((level.value if level else "none", label))
    if isinstance(specific, Mapping):
        named = specific.get("severity")
        if isinstance(named, str) and named.strip().lower() in _LABELS:
            found.append((_LABELS[named.strip().lower()].value, f"label {named}"))
    if not found:
        return ("unknown", "no CVSS v2/v3 vector or severity label")
    return max(found, key=lambda s: RANK[s[0]])


# --- matching ----------------------------------------------------------------------


def is_affected(affected: Affected, version: str) -> bool:
    """OSV evaluation for one package entry; raises ``Undecidable`` if we cannot tell."""
    if _listed(version, affected.versions):
        return True
    return any(_in_range(version, r, affected.ecosystem) for r in affected.ranges)


def _listed(version: str, versions: Iterable[str]) -> bool:
    mine = parse_pep440(version)
    for listed in versions:
        if listed == version:
            return True
        theirs = parse_pep440(listed)
        if mine is not None and theirs is not None and mine == theirs:
            return True
    return False


def _special(event: Event) -> bool:
    return (event.kind == "introduced" and event.version == "0") or (
        event.kind == "limit" and "*" in event.version
    )


def _in_range(version: str, rng: Range, ecosystem: str) -> bool:
    if rng.type == "GIT":
        return False
    parse = _ordering(version, rng, ecosystem)
    v = parse(version)

    def key(event: Event) -> tuple[int, Any]:
        if event.kind == "introduced" and event.version == "0":
            return (0, None)
        if event.kind == "limit" and "*" in event.version:
            return (2, None)
        return (1, parse(event.version))

    limits = [e for e in rng.events if e.kind == "limit"]
    if limits and not any(key(e)[0] == 2 or v < key(e)[1] for e in limits):
        return False
    vulnerable = False
    ordered = sorted((e for e in rng.events if e.kind != "limit"), key=key)
    for event in ordered:
        k = key(event)
        if event.kind == "introduced" and (k[0] == 0 or v >= k[1]):
            vulnerable = True
        elif (event.kind == "fixed" and v >= k[1]) or (event.kind == "last_affected" and v > k[1]):
            vulnerable = False
    return vulnerable


def _ordering(version: str, rng: Range, ecosystem: str) -> Callable[[str], Any]:
    """Choose how to compare: the range's own ordering, else PEP 440 if everything parses."""
    candidates: list[Callable[[str], Any]] = []
    if rng.type == "SEMVER":
        candidates = [parse_semver, parse_pep440]
    elif rng.type == "ECOSYSTEM" and ecosystem == PYPI:
        candidates = [parse_pep440]
    for parse in candidates:
        values = [version] + [e.version for e in rng.events if not _special(e)]
        if all(parse(x) is not None for x in values):
            return parse
    raise Undecidable(
        f"version {version!r} cannot be compared with a {rng.type} range of {ecosystem}"
    )
