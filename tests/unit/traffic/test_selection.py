"""The precomputed plan: smooth weighted round-robin and the decision order."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from kiln.core.traffic.selection import compile_plan, parse_cookie_header, smooth_weighted_cycle
from kiln.core.traffic.table import (
    Backend,
    CookieMatch,
    HeaderMatch,
    Mirror,
    Release,
    RouteTable,
    Sticky,
)


def test_90_10_spreads_the_minority_never_in_a_row() -> None:
    cycle = smooth_weighted_cycle([90, 10])
    assert len(cycle) == 10
    assert Counter(cycle) == {0: 9, 1: 1}


def test_50_50_alternates() -> None:
    assert smooth_weighted_cycle([50, 50]) == (0, 1)


def test_nginx_reference_sequence_for_5_1_1() -> None:
    # The example from nginx's smooth weighted round-robin commit: a a b a c a a.
    assert smooth_weighted_cycle([5, 1, 1]) == (0, 0, 1, 0, 2, 0, 0)


def test_zero_weights_never_appear_and_all_zero_is_empty() -> None:
    assert 1 not in smooth_weighted_cycle([70, 0, 30])
    assert smooth_weighted_cycle([0, 0]) == ()


@given(st.lists(st.integers(0, 100), min_size=1, max_size=6).filter(lambda w: sum(w) > 0))
def test_every_cycle_honours_the_exact_split(weights: list[int]) -> None:
    cycle = smooth_weighted_cycle(weights)
    counts = Counter(cycle)
    scale = sum(weights) // len(cycle)
    assert {i: c * scale for i, c in counts.items()} == {
        i: w for i, w in enumerate(weights) if w > 0
    }


@given(st.integers(1, 49))
def test_a_minority_of_two_never_gets_two_in_a_row(minority: int) -> None:
    cycle = smooth_weighted_cycle([100 - minority, minority])
    assert (1, 1) not in zip(cycle, cycle[1:] + cycle[:1], strict=True)


def plan_table() -> RouteTable:
    return RouteTable(
        1,
        "prod",
        (
            Release("stable", 100, (Backend("h", 1),)),
            Release("canary", 0, (Backend("h", 2),)),
            Release("b", 0, (Backend("h", 3),)),
        ),
        rules=(HeaderMatch("X-Preview", "yes", "canary"), CookieMatch("cohort", "b", "b")),
        sticky=Sticky("kiln_release"),
        mirror=Mirror("canary", 10),
    )


def test_a_header_rule_routes_to_its_release_even_at_weight_0() -> None:
    plan = compile_plan(plan_table())
    assert plan.choose(0, headers={"x-preview": "yes"}) == "canary"
    assert plan.choose(0, headers={"x-preview": "no"}) == "stable"


def test_a_cookie_rule_beats_the_sticky_cookie() -> None:
    plan = compile_plan(plan_table())
    assert plan.choose(0, cookies={"cohort": "b", "kiln_release": "stable"}) == "b"


def test_a_sticky_cookie_for_a_drained_release_is_ignored() -> None:
    plan = compile_plan(plan_table())
    assert plan.choose(0, cookies={"kiln_release": "canary"}) == "stable"
    assert plan.choose(0, cookies={"kiln_release": "stable"}) == "stable"


def test_the_mirror_mask_copies_the_asked_share() -> None:
    plan = compile_plan(plan_table())
    assert sum(plan.mirrors(i) for i in range(1000)) == 100


def test_weighted_choice_follows_the_slots() -> None:
    t = RouteTable(
        1, "e", (Release("a", 75, (Backend("h", 1),)), Release("b", 25, (Backend("h", 2),)))
    )
    plan = compile_plan(t)
    assert Counter(plan.weighted(i) for i in range(400)) == {"a": 300, "b": 100}


def test_cookie_header_parsing_keeps_the_first_of_a_name() -> None:
    assert parse_cookie_header('a=1; b="2"; a=3;junk; c=') == {"a": "1", "b": "2", "c": ""}
