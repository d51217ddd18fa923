"""The canonical leaf bytes of an event (docs/ledger.md, "Leaf bytes")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kiln.core.ledger.events import Event, EventDraft, decode, encode, leaf_prefix
from kiln.core.ledger.kinds import EventKind
from kiln.errors import IntegrityError, InvalidInput

WHEN = datetime(2026, 11, 20, 14, 2, 3, 4000, tzinfo=UTC)


def test_an_event_encodes_to_the_documented_bytes() -> None:
    event = Event(
        seq=7,
        time=WHEN,
        kind=EventKind.DEPLOY_START,
        actor="ci@example",
        artifact="sha256:" + "a" * 64,
        environment="prod",
        release="r-9",
        links={"config": "sha256:" + "c" * 64},
        details={"weights": {"r-9": 10, "r-8": 90.5}, "note": "é"},
    )
    assert encode(event) == (
        b'{"seq":7,"time":"2026-11-20T14:02:03.004000Z","kind":"deploy.start",'
        b'"actor":"ci@example","subject":{"artifact":"sha256:' + b"a" * 64 + b'",'
        b'"environment":"prod","release":"r-9"},"links":{"config":"sha256:' + b"c" * 64 + b'"},'
        b'"details":{"note":"\xc3\xa9","weights":{"r-8":90.5,"r-9":10}}}'
    )
    assert encode(event).startswith(leaf_prefix(7))


def test_decode_inverts_encode() -> None:
    event = EventDraft(EventKind.ROLLBACK, "kiln", environment="prod").at(3, WHEN)
    assert decode(encode(event)) == event


def test_non_canonical_bytes_are_refused() -> None:
    good = encode(EventDraft(EventKind.BUILD, "ci").at(0, WHEN))
    spaced = good.replace(b'"seq":0,', b'"seq": 0,')
    with pytest.raises(IntegrityError, match="canonical"):
        decode(spaced)
    with pytest.raises(IntegrityError):
        decode(b"not json")


def test_values_json_cannot_carry_are_refused_at_the_edge() -> None:
    with pytest.raises(InvalidInput):
        EventDraft(EventKind.BUILD, "ci", details={"x": float("nan")})
    with pytest.raises(InvalidInput):
        EventDraft(EventKind.BUILD, "ci", details={"x": object()})
    with pytest.raises(InvalidInput):
        EventDraft(EventKind.BUILD, "")


def test_naive_times_are_refused() -> None:
    with pytest.raises(InvalidInput):
        encode(EventDraft(EventKind.BUILD, "ci").at(0, datetime(2026, 1, 1)))


@pytest.mark.parametrize("name", ["password", "Token", "api-key", "client_secret"])
def test_details_that_name_a_secret_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="secret"):
        EventDraft(EventKind.DEPLOY_START, "ci", details={"env": {name: "hunter2"}})
    assert EventDraft(EventKind.DEPLOY_START, "ci", details={"secret_ref": "db-password"})
