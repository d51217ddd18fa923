"""The outbox's data: an event waiting in ``state.db`` for the ledger. Pure.

The rollout executor saves a transition and the events that describe it in one
transaction of the desired-state store (its *outbox*), then appends the events
to the ledger and clears them (``kiln.services.outbox``). A crash in between
leaves the events in the outbox, and the next flush appends them. So a replay
never appends an event twice, each event carries an *idempotency key* in its
details (``details.idempotency_key``): the ledger appends a keyed event only
when no stored event has that key yet (``OnceAppender.append_once``).

The key is ``<deployment>/<outbox seq>``: the store numbers outbox rows with a
sequence it never reuses, and deployment ids are random per rollout, so a key
names one event of one transition for good (docs/ledger.md, "Idempotency keys").
Keeping it in ``details`` leaves the leaf format unchanged: an old verifier
checks these events like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind
from kiln.errors import InvalidInput

IDEMPOTENCY_KEY = "idempotency_key"


def key_for(deployment: str, seq: int) -> str:
    """The idempotency key of outbox row ``seq``, written for ``deployment``."""
    if seq < 1:
        raise InvalidInput(f"outbox sequence numbers start at 1, not {seq}")
    return f"{deployment or '-'}/{seq}"


def key_of(draft: EventDraft) -> str | None:
    """The draft's idempotency key, if it has one."""
    key = draft.details.get(IDEMPOTENCY_KEY)
    if key is None:
        return None
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"details.{IDEMPOTENCY_KEY} must be a non-empty string, not {key!r}")
    return key


def with_key(draft: EventDraft, key: str) -> EventDraft:
    """The same event, carrying ``key`` in its details."""
    return replace(draft, details={**draft.details, IDEMPOTENCY_KEY: key})


def draft_json(draft: EventDraft) -> dict[str, Any]:
    """A draft as JSON data, the way an outbox row stores it."""
    return {
        "kind": str(draft.kind),
        "actor": draft.actor,
        "artifact": draft.artifact,
        "environment": draft.environment,
        "release": draft.release,
        "links": dict(draft.links),
        "details": dict(draft.details),
    }


def draft_from_json(data: Mapping[str, Any]) -> EventDraft:
    """The inverse of ``draft_json``; ``InvalidInput`` for a row that is not one."""
    try:
        return EventDraft(
            kind=EventKind(data["kind"]),
            actor=data["actor"],
            artifact=data.get("artifact"),
            environment=data.get("environment"),
            release=data.get("release"),
            links=data.get("links") or {},
            details=data.get("details") or {},
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"an outbox row is not an event draft: {exc}") from None
