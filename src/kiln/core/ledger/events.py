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

import functools
import json
import math
from collections.abc import Callable, Mapping
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
LINK_ATTESTATION = "attestation"
LINK_ATTESTATION_PREFIX = "attestation."

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@functools.lru_cache(maxsize=8)
def format_time(moment: datetime) -> str:
    # Cached: a batch of appends shares one time, and strftime is not cheap.
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
        # Own plain copies: the caller's mappings may change, and encoding wants dicts.
        object.__setattr__(self, "links", dict(self.links))
        object.__setattr__(self, "details", _plain(self.details))

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
        """Linked attestation digests by type: links named ``attestation.<type>``, and a
        bare ``attestation`` link typed by ``details.predicateType`` (as ``kiln attest``
        records it)."""
        n = len(LINK_ATTESTATION_PREFIX)
        found = {k[n:]: v for k, v in self.links.items() if k.startswith(LINK_ATTESTATION_PREFIX)}
        if (bare := self.links.get(LINK_ATTESTATION)) is not None:
            kind = self.details.get("predicateType")
            found[kind if isinstance(kind, str) and kind else "attestation"] = bare
        return found

    def to_json(self) -> dict[str, Any]:
        """The event as the JSON object its leaf bytes encode."""
        return json.loads(encode(self))  # type: ignore[no-any-return]


# Detail names that only ever hold a secret. The ledger is public to anyone who
# audits it, so an event carrying one is refused rather than stored (fail closed).
SECRET_NAMES = frozenset(
    {"password", "passwd", "secret", "token", "api_key", "apikey", "private_key",
     "authorization", "credentials", "client_secret"}
)  # fmt: skip


def _check_json(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where} holds {value}, which JSON cannot carry")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{where} has a non-string key {key!r}")
            if key.lower().replace("-", "_") in SECRET_NAMES:
                raise InvalidInput(
                    f"{where}.{key} looks like a secret; the ledger never stores secret values",
                    hint="record a reference to the secret (its name or digest) instead",
                )
            _check_json(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidInput(f"{where} holds a {type(value).__name__}, not JSON data")


# Nested objects are sorted by the C encoder (sort_keys); the top level keeps
# its fixed member order by being assembled around them. Drafts hold plain dicts
# and lists (``_plain`` at construction), which the C encoder requires.
_SORTED = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode
_TEMPLATE = (
    '{"seq":%d,"time":"%s","kind":"%s","actor":%s,'
    '"subject":{"artifact":%s,"environment":%s,"release":%s},"links":{%s},"details":%s}'
)
# The string escaper the encoder itself uses with ensure_ascii=False (C when built).
_STR: Callable[[str], str] = json.encoder.encode_basestring


def _opt(value: str | None) -> str:
    return "null" if value is None else _STR(value)


def _details_json(details: Mapping[str, Any]) -> str:
    if type(details) is dict:
        try:
            return _SORTED(details)
        except TypeError:  # a nested mapping that is not a dict
            pass
    return _SORTED(_plain(details))


def _plain(value: Any) -> Any:
    """A deep copy as dicts and lists, the only containers JSON has."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def leaf_prefix(seq: int) -> bytes:
    """The bytes every leaf of sequence number ``seq`` starts with."""
    return b'{"seq":%d,' % seq


def encode_fields(
    seq: int,
    time_text: str,
    kind: EventKind,
    actor: str,
    artifact: str | None,
    environment: str | None,
    release: str | None,
    links: Mapping[str, str],
    details: Mapping[str, Any],
) -> bytes:
    """The canonical leaf bytes (module docstring), from an event's fields."""
    # Kind values are fixed identifiers ([a-z.]) and need no escaping; every other
    # string goes through the encoder's own escaper, so the bytes are exactly what
    # the encoder would produce for the same object.
    text = _TEMPLATE % (
        seq,
        time_text,
        kind.value,
        _STR(actor),
        _opt(artifact),
        _opt(environment),
        _opt(release),
        ",".join(f"{_STR(k)}:{_STR(links[k])}" for k in sorted(links)),
        _details_json(details),
    )
    return text.encode("utf-8")


def encode(event: Event) -> bytes:
    """The canonical leaf bytes of ``event``."""
    return encode_fields(
        event.seq,
        format_time(event.time),
        event.kind,
        event.actor,
        event.artifact,
        event.environment,
        event.release,
        event.links,
        event.details,
    )


def encode_draft(draft: EventDraft, seq: int, time_text: str) -> bytes:
    """``encode(draft.at(seq, time))`` without building the intermediate ``Event``."""
    return encode_fields(
        seq,
        time_text,
        draft.kind,
        draft.actor,
        draft.artifact,
        draft.environment,
        draft.release,
        draft.links,
        draft.details,
    )


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
