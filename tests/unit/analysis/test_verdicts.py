"""Verdicts are separate types, and a step's answer fails closed."""

from __future__ import annotations

import pytest

from kiln.core.analysis import Fail, Inconclusive, Pass, Pending, Status, combine

P = Pass("ok", {"x": 1.0})
F = Fail(("too many errors", "0.08 > max 0.05"))
I = Inconclusive("no data")  # noqa: E741
W = Pending("collecting")


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([P, P], Pass),
        ([P, F], Fail),
        ([W, F], Fail),  # a failure does not wait for the others
        ([P, W], Pending),
        ([I, W], Pending),
        ([P, I], Inconclusive),
        ([], Inconclusive),  # no metrics is never a pass
    ],
)
def test_combining_metric_answers(answers: list[Status], expected: type) -> None:
    combined = combine([(f"m{i}", a) for i, a in enumerate(answers)])
    assert isinstance(combined, expected)


def test_a_combined_failure_keeps_every_reason_and_figure() -> None:
    other = Fail(("latency",), {"p95": 0.4})
    combined = combine([("errors", F), ("slow", other), ("fine", P)])
    assert isinstance(combined, Fail)
    assert combined.reasons == ("too many errors", "0.08 > max 0.05", "latency")
    assert combined.figures == {"slow.p95": 0.4, "fine.x": 1.0}


def test_a_failure_needs_a_reason() -> None:
    with pytest.raises(ValueError):
        Fail(())
