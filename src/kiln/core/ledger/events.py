"""Ledger events and their canonical bytes (the Merkle leaves). Pure.

An ``Event`` is immutable once appended. Its canonical serialisation is the leaf
the Merkle tree hashes, and it is also the exact line an export writes, so an
outside verifier hashes the line it reads and never re-encodes anything. The
format (``docs/ledger.md``, "Leaf bytes") is UTF-8 JSON with no insignificant
whitespace and a fixed member order at the top level:

    {"seq":N,"time":"YYYY-MM-DDTHH:MM:SS.ffffffZ","kind":K,"actor":A,
     "subject":{"artifact":..,"environment":..,"release":..},
     "links":{..},"details":{..}}

``seq`` comes first so a verifier can check the position of an entry without
parsing the rest (``leaf_prefix``). ``links`` and ``details`` have their keys
sorted (recursively), strings are emitted as UTF-8 (not ``\\u`` escapes, except
the ones JSON requires), and NaN or infinities are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from kiln.core.ledger.kinds import EventKind
from kiln.errors import IntegrityError, InvalidInput

FORMAT_VERSION = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# Well-known link names (docs/ledger.md, "Links"). Any other name is allowed.
LINK_CONFIG = "config"
LINK_PREVIOUS_RELEASE = "previous_release"
LINK_OUTCOME = "outcome"
LINK_SBOM = "sbom"
LINK_ATTESTATION_PREFIX = "attestation."

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidInput("event times must be timezone-aware")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"event time {text!r} is not {TIME_FORMAT}") from None


@dataclass(frozen=True)
class EventDraft:
    """What a caller records; the ledger adds ``seq`` and ``time``."""

    kind: EventKind
    actor: str
    artifact: str | None = None
    environment: str | None = None
    release: str | None = None
    links: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if not self.actor:
            raise InvalidInput("an event needs an actor")
        for name, value in self.links.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise InvalidInput(f"link {name!r} must map a string to a string")
        _check_json(self.details, "details")

    def at(self, seq: int, time: datetime) -> Event:
        return Event(
            seq=seq,
            time=time,
            kind=self.kind,
            actor=self.actor,
            artifact=self.artifact,
            environment=self.environment,
            release=self.release,
            links=self.links,
            details=self.details,
        )


@dataclass(frozen=True)
class Event:
    seq: int
    time: datetime
    kind: EventKind
    actor: str
    artifact: str | None = None
    environment: str | None = None
    release: str | None = None
    links: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def attestations(self) -> dict[str, str]:
        """Links whose name starts with ``attestation.``, keyed by the rest."""
        n = len(LINK_ATTESTATION_PREFIX)
        return {k[n:]: v for k, v in self.links.items() if k.startswith(LINK_ATTESTATION_PREFIX)}

    def to_json(self) -> dict[str, Any]:
        """The event as the JSON object its leaf bytes encode."""
        return json.loads(encode(self))  # type: ignore[no-any-return]


def _check_json(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where} holds {value}, which JSON cannot carry")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{where} has a non-string key {key!r}")
            _check_json(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidInput(f"{where} holds a {type(value).__name__}, not JSON data")


def _dump(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def leaf_prefix(seq: int) -> bytes:
    """The bytes every leaf of sequence number ``seq`` starts with."""
    return b'{"seq":%d,' % seq


def encode(event: Event) -> bytes:
    """The canonical leaf bytes of ``event`` (module docstring)."""
    subject = {
        "artifact": event.artifact,
        "environment": event.environment,
        "release": event.release,
    }
    text = (
        f'{{"seq":{event.seq:d},"time":"{format_time(event.time)}",'
        f'"kind":{_dump(str(event.kind))},"actor":{_dump(event.actor)},'
        f'"subject":{_dump(subject)},"links":{_dump(dict(event.links))},'
        f'"details":{_dump(_plain(event.details))}}}'
    )
    return text.encode("utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def decode(data: bytes) -> Event:
    """Parse leaf bytes and insist they are canonical; raise ``IntegrityError`` if not."""
    try:
        raw = json.loads(data)
        seq = raw["seq"]
        subject = raw["subject"]
        kind_name = raw["kind"]
        event = Event(
            seq=seq,
            time=parse_time(raw["time"]),
            kind=EventKind(kind_name),
            actor=raw["actor"],
            artifact=subject["artifact"],
            environment=subject["environment"],
            release=subject["release"],
            links=MappingProxyType(dict(raw["links"])),
            details=MappingProxyType(raw["details"]),
        )
    except (ValueError, KeyError, TypeError, InvalidInput) as exc:
        raise IntegrityError(f"a ledger entry is not a valid event: {exc}") from None
    if set(raw) != {"seq", "time", "kind", "actor", "subject", "links", "details"}:
        raise IntegrityError(f"event {seq} has unexpected members")
    if encode(event) != data:
        raise IntegrityError(f"event {seq} is not in canonical form")
    return event
