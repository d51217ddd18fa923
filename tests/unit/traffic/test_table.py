"""Route tables: invariants, canonical JSON, the generation rule."""

from __future__ import annotations

import json

import pytest

from kiln.core.traffic.table import (
    Backend,
    CookieMatch,
    HeaderMatch,
    Listener,
    Mirror,
    Release,
    RouteTable,
    Sticky,
    from_json,
    must_install,
)
from kiln.errors import InvalidInput, Refused, SpecError


def table(generation: int = 1, **kw: object) -> RouteTable:
    args: dict[str, object] = {
        "generation": generation,
        "environment": "prod",
        "releases": (
            Release("stable", 90, (Backend("127.0.0.1", 8001), Backend("127.0.0.1", 8002))),
            Release("canary", 10, (Backend("127.0.0.1", 8003),)),
        ),
    }
    args.update(kw)
    return RouteTable(**args)  # type: ignore[arg-type]


def messages(exc: SpecError) -> list[str]:
    return [f"{p.path}: {p.message}" for p in exc.problems]


def test_a_valid_table_round_trips_through_canonical_json() -> None:
    t = table(
        rules=(HeaderMatch("X-Preview", "1", "canary"), CookieMatch("cohort", "b", "canary")),
        sticky=Sticky(),
        mirror=Mirror("canary", 25),
    )
    data = t.to_json()
    assert from_json(data) == t
    assert from_json(data).to_json() == data
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()


def test_equal_tables_are_equal_bytes_whatever_the_input_key_order() -> None:
    raw = json.loads(table().to_json())
    shuffled = json.dumps(dict(reversed(list(raw.items()))), indent=3)
    assert from_json(shuffled).to_json() == table().to_json()


@pytest.mark.parametrize(
    ("releases", "expected"),
    [
        (
            (Release("a", 60, (Backend("h", 1),)), Release("b", 30, (Backend("h", 2),))),
            "releases: weights of releases with backends sum to 90, not 100",
        ),
        (
            (Release("a", 100, (Backend("h", 1),)), Release("b", 5, ())),
            "releases[1].weight: release 'b' has weight 5 but no backends",
        ),
        (
            (Release("a", 101, (Backend("h", 1),)),),
            "releases[0].weight: 101 is outside 0..100",
        ),
        (
            (Release("a", 50, (Backend("h", 1),)), Release("a", 50, (Backend("h", 2),))),
            "releases[1].name: release 'a' appears twice",
        ),
        (
            (Release("a", 50, (Backend("h", 1),)), Release("b", 50, (Backend("h", 1),))),
            "releases[1].backends: backend h:1 already belongs to release 'a'",
        ),
        ((), "releases: weights of releases with backends sum to 0, not 100"),
    ],
)
def test_invalid_weights_and_backends_are_refused_with_a_clear_problem(
    releases: tuple[Release, ...], expected: str
) -> None:
    with pytest.raises(SpecError) as caught:
        RouteTable(1, "prod", releases)
    assert expected in messages(caught.value)


def test_a_release_without_backends_and_weight_0_is_allowed() -> None:
    t = RouteTable(1, "prod", (Release("a", 100, (Backend("h", 1),)), Release("next", 0, ())))
    assert t.release("next") == Release("next", 0, ())


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as caught:
        table(
            generation=-1,
            environment="bad name",
            rules=(HeaderMatch("bad header", "1", "ghost"),),
            mirror=Mirror("ghost", 0),
            sticky=Sticky("a;b", 0),
        )
    paths = {p.path for p in caught.value.problems}
    assert paths == {
        "generation",
        "environment",
        "rules[0].name",
        "rules[0].release",
        "mirror.release",
        "mirror.percent",
        "sticky.cookie",
        "sticky.max_age",
    }


def test_rule_values_cannot_smuggle_line_breaks() -> None:
    with pytest.raises(SpecError) as caught:
        table(rules=(HeaderMatch("x-preview", "1\r\nx-evil: 1", "canary"),))
    assert "rules[0].value: must not contain line breaks" in messages(caught.value)


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"generation": 1, "environment": "e", "releases": [], "extra": 1}'],
)
def test_malformed_json_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        from_json(text)


def test_a_string_weight_is_named() -> None:
    raw = json.loads(table().to_json())
    raw["releases"][0]["weight"] = "90"
    with pytest.raises(InvalidInput, match="'weight' must be an integer"):
        from_json(json.dumps(raw))


@pytest.mark.parametrize("text", ["h", "h:", ":80x", "h:99999", "h:0"])
def test_backend_addresses_are_checked(text: str) -> None:
    with pytest.raises(InvalidInput):
        Backend.parse(text)


def test_newer_generations_install_the_same_is_a_no_op_older_is_refused() -> None:
    current = table(5)
    assert must_install(None, current) is True
    assert must_install(current, table(6)) is True
    assert must_install(current, table(5)) is False
    with pytest.raises(Refused, match="generation 4 is not newer than the served generation 5"):
        must_install(current, table(4))
    different = table(5, mirror=Mirror("canary", 10))
    with pytest.raises(Refused):
        must_install(current, different)


# --- listeners: "port P serves release R only" (the blue/green preview port) -------------


def test_a_table_with_a_listener_round_trips_through_canonical_json() -> None:
    t = table(listeners=(Listener(9001, "canary"),))
    data = t.to_json()
    assert json.loads(data)["listeners"] == [{"port": 9001, "release": "canary"}]
    assert from_json(data) == t
    assert from_json(data).to_json() == data
    assert t.listener(9001) == Listener(9001, "canary")
    assert t.listener(9002) is None
    assert t.with_generation(7).listeners == t.listeners


def test_a_table_without_listeners_keeps_the_bytes_it_had_before_the_field() -> None:
    data = table().to_json()
    assert b"listeners" not in data
    assert from_json(data).listeners == ()


def test_a_persisted_table_without_the_field_reads_as_no_listener() -> None:
    raw = json.loads(table().to_json())
    raw.pop("listeners", None)
    assert from_json(json.dumps(raw)).listeners == ()
    raw["listeners"] = []
    assert from_json(json.dumps(raw)) == table()


@pytest.mark.parametrize(
    ("listeners", "expected"),
    [
        ((Listener(0, "canary"),), "listeners[0].port: 0 is not a port 1..65535"),
        ((Listener(65536, "canary"),), "listeners[0].port: 65536 is not a port 1..65535"),
        ((Listener(True, "canary"),), "listeners[0].port: True is not a port 1..65535"),  # type: ignore[arg-type]
        (
            (Listener(9001, "canary"), Listener(9001, "stable")),
            "listeners[1].port: port 9001 is listed twice",
        ),
        ((Listener(9001, "ghost"),), "listeners[0].release: release 'ghost' is absent"),
    ],
)
def test_an_invalid_listener_is_refused_with_its_field(
    listeners: tuple[Listener, ...], expected: str
) -> None:
    with pytest.raises(SpecError) as err:
        table(listeners=listeners)
    assert any(m.startswith(expected) for m in messages(err.value)), messages(err.value)


def test_a_listener_needs_a_release_with_backends() -> None:
    releases = (Release("stable", 100, (Backend("h", 1),)), Release("new", 0, ()))
    with pytest.raises(SpecError) as err:
        table(releases=releases, listeners=(Listener(9001, "new"),))
    assert messages(err.value) == [
        "listeners[0].release: release 'new' is absent or has no backends"
    ]


@pytest.mark.parametrize(
    "raw",
    [
        [{"port": "9001", "release": "canary"}],
        [{"release": "canary"}],
        {"port": 9001, "release": "canary"},
    ],
)
def test_a_malformed_listener_in_json_is_invalid_input(raw: object) -> None:
    doc = json.loads(table().to_json())
    doc["listeners"] = raw
    with pytest.raises(InvalidInput):
        from_json(json.dumps(doc))
