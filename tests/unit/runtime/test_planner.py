"""Which instances to keep, replace, create or remove: a table of cases."""

from __future__ import annotations

import pytest

from kiln.core.runtime.model import Instance, InstanceId, State
from kiln.core.runtime.planner import Create, Ignore, Keep, Reason, Remove, Replace, plan


def inst(name: str, state: State = State.RUNNING) -> Instance:
    return Instance(id=InstanceId(name), state=state, labels={}, created=name)


A, B, C = InstanceId("a"), InstanceId("b"), InstanceId("c")

CASES = [
    # (desired, observed, failures, expected)
    pytest.param(2, [], {}, [Create(2)], id="nothing-yet"),
    pytest.param(
        2,
        [inst("a"), inst("b")],
        {A: 0, B: 0},
        [Keep(A, Reason.HEALTHY), Keep(B, Reason.HEALTHY)],
        id="all-healthy",
    ),
    pytest.param(
        2,
        [inst("a", State.DEAD), inst("b")],
        {B: 0},
        [Replace(A, Reason.DEAD), Keep(B, Reason.HEALTHY)],
        id="dead-is-replaced",
    ),
    pytest.param(
        2,
        [inst("a"), inst("b")],
        {A: 3, B: 2},
        [Replace(A, Reason.UNHEALTHY), Keep(B, Reason.UNHEALTHY)],
        id="unhealthy-at-threshold-only",
    ),
    pytest.param(
        1,
        [inst("a"), inst("b"), inst("c")],
        {A: 0},
        [Remove(C, Reason.SURPLUS), Remove(B, Reason.SURPLUS), Keep(A, Reason.HEALTHY)],
        id="surplus-newest-first",
    ),
    pytest.param(
        1,
        [inst("a", State.DEAD), inst("b")],
        {},
        [Remove(A, Reason.DEAD), Keep(B, Reason.STARTING)],
        id="no-replacement-when-surplus",
    ),
    pytest.param(
        2,
        [inst("a", State.ORPHAN), inst("b")],
        {},
        [Remove(A, Reason.ORPHAN), Keep(B, Reason.STARTING), Create(1)],
        id="orphans-are-removed-never-counted",
    ),
    pytest.param(0, [inst("a")], {}, [Remove(A, Reason.SURPLUS)], id="scale-to-zero"),
    pytest.param(
        1,
        [inst("a", State.IMPOSTOR)],
        {},
        [Ignore(A, Reason.IMPOSTOR), Create(1)],
        id="impostors-are-neither-counted-nor-touched",
    ),
]


@pytest.mark.parametrize(("desired", "observed", "failures", "expected"), CASES)
def test_plan(
    desired: int, observed: list[Instance], failures: dict[InstanceId, int], expected: list[object]
) -> None:
    assert plan(desired, observed, failures, failure_threshold=3) == expected


def test_a_negative_count_is_a_bug() -> None:
    with pytest.raises(ValueError, match="desired"):
        plan(-1, [], {})
