"""The canonical leaf bytes of an event (docs/ledger.md, "Leaf bytes")."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.core.ledger.events import (
    SECRET_NAMES,
    Event,
    EventDraft,
    decode,
    encode,
    leaf_prefix,
)
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


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_key = _text.filter(lambda k: k.lower().replace("-", "_") not in SECRET_NAMES)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_key, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(min_value=0, max_value=2**40),
    kind=st.sampled_from(list(EventKind)),
    actor=_text.filter(bool),
    subject=st.tuples(st.none() | _text, st.none() | _text, st.none() | _text),
    links=st.dictionaries(_text, _text, max_size=3),
    details=st.dictionaries(
        _text.filter(lambda k: k.lower() not in SECRET_NAMES), _json, max_size=4
    ),
)
def test_encoding_matches_a_plain_json_reference(
    seq: int,
    kind: EventKind,
    actor: str,
    subject: tuple[str | None, str | None, str | None],
    links: dict[str, str],
    details: dict[str, Any],
) -> None:
    """The fast encoder's bytes equal json.dumps of the same object, member by member."""

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    artifact, environment, release = subject
    names = ("artifact", "environment", "release")
    event = EventDraft(kind, actor, artifact, environment, release, links, details).at(seq, WHEN)
    reference = (
        f'{{"seq":{seq},"time":"2026-11-20T14:02:03.004000Z","kind":{dump(str(kind))},'
        f'"actor":{dump(actor)},"subject":{dump(dict(zip(names, subject, strict=True)))},'
        f'"links":{dump(links)},"details":{dump(details)}}}'
    ).encode()
    assert encode(event) == reference
    assert decode(reference) == event
