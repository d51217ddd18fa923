"""Every invalid spec in ``cases.INVALID`` is refused with the right place and words."""

from __future__ import annotations

import pytest

from kiln.core.spec.loader import load_spec
from kiln.errors import ExitCode, Problem, SpecError
from tests.unit.spec.cases import INVALID, Case


def _problems(document: bytes) -> list[Problem]:
    with pytest.raises(SpecError) as caught:
        load_spec(document, source="shop/kiln.yaml")
    assert caught.value.exit_code is ExitCode.INVALID
    return caught.value.problems


def test_the_table_has_at_least_25_distinct_cases() -> None:
    assert len({c.id for c in INVALID}) == len(INVALID) >= 25
    assert len({c.document for c in INVALID}) == len(INVALID)


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_an_invalid_spec_reports_where_and_what(case: Case) -> None:
    problems = _problems(case.document)
    matching = [p for p in problems if case.message in p.message + f" (expected {p.expected})"]
    assert matching, f"no problem says {case.message!r}: {[p.render() for p in problems]}"
    problem = matching[0]
    assert (problem.line, problem.column, problem.path) == (case.line, case.column, case.path)
    assert problem.file == "shop/kiln.yaml"
    assert case.hint in problem.hint
    rendered = problem.render()
    assert "Traceback" not in rendered
    if case.line is not None:
        assert rendered.startswith(f"shop/kiln.yaml:{case.line}:{case.column}: ")


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_an_invalid_spec_reports_only_its_own_mistake(case: Case) -> None:
    # The table's documents hold one mistake each: extra problems would be noise.
    assert len(_problems(case.document)) == 1


def test_every_mistake_is_reported_at_once_field_and_cross_field_errors_together() -> None:
    document = b"""\
service: shop
environments:
  - name: dev
    replicsa: 2
  - name: dev
    replicas: -1
    strategy: {canary: {steps: [{setWeight: 150}]}}
  - name: prod
    health: {timeout: soon}
promotion: [dev, prd]
"""
    problems = _problems(document)
    assert [(p.line, p.path) for p in problems] == [
        (4, "environments[0].replicsa"),
        (5, "environments[1].name"),
        (6, "environments[1].replicas"),
        (7, "environments[1].strategy.canary.steps[0].setWeight"),
        (9, "environments[2].health.timeout"),
        (10, "promotion[1]"),
    ]


def test_problems_are_sorted_by_position_and_not_repeated() -> None:
    problems = _problems(
        b"service: shop\nenvironments:\n  - {name: b}\n  - {name: a}\n  - {name: a}\n"
        b"promotion: [c]\n"
    )
    assert [p.render().splitlines()[0] for p in problems] == [
        "shop/kiln.yaml:5:12: environments[2].name: duplicate environment name 'a'",
        "shop/kiln.yaml:6:13: promotion[0]: unknown environment 'c' (expected one of b, a)",
    ]


def test_a_problem_renders_location_path_expectation_and_hint() -> None:
    (problem,) = _problems(b"service: shop\nenvironments:\n  - name: dev\n    replicas: -2\n")
    assert problem.render() == (
        "shop/kiln.yaml:4:15: environments[0].replicas: -2 is out of range "
        "(expected a value >= 0)\n"
        "    hint: replicas is the number of instances, 0 to 1000"
    )


def test_the_error_summary_counts_the_problems() -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(b"service: shop\nbuild: {port: 0, command: []}\n", source="k.yaml")
    assert str(caught.value) == "2 problems in k.yaml"
    assert "kiln validate" in caught.value.hint


def test_a_cyclic_alias_is_refused_not_followed() -> None:
    problems = _problems(b"service: shop\nenvironments: &e\n  - name: dev\n    tags: *e\n")
    assert problems


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        ref = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([ref] * 10)}]")
    document = ("service: shop\nbuild:\n  env:\n" + "\n".join("    " + ln for ln in lines)).encode()
    (problem,) = _problems(document)
    assert "expands to more than" in problem.message
