"""The threshold judge follows Argo Rollouts' count / interval / failureLimit rules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kiln.core.analysis import (
    Fail,
    Inconclusive,
    MetricKind,
    Observation,
    Pass,
    Pending,
    ThresholdConfig,
    ThresholdJudge,
)

from .helpers import missing, pair, series


def judge(**overrides: object) -> ThresholdJudge:
    fields: dict[str, object] = {
        "name": "error-rate",
        "metric": MetricKind.ERROR_RATE,
        "max": 0.05,
        "interval": 1.0,
        "min_samples": 1,
    }
    fields.update(overrides)
    return ThresholdJudge(ThresholdConfig(**fields))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    name: str
    windows: list[tuple[int, int]]  # canary (requests, errors) per 1 s window
    config: dict[str, object]
    verdict: type  # after feeding everything (verdict(), or conclude() if pending)
    decided_after: int | None  # windows fed when the judge decided on its own


CASES = [
    Case("all good, count reached", [(100, 1)] * 3, {"count": 3}, Pass, 3),
    Case("one failure fails with failureLimit 0", [(100, 1), (100, 9)], {}, Fail, 2),
    Case(
        "failures within the limit pass",
        [(100, 9), (100, 1), (100, 9)],
        {"count": 3, "failure_limit": 2},
        Pass,
        3,
    ),
    Case(
        "failures beyond the limit fail",
        [(100, 9), (100, 9), (100, 9)],
        {"failure_limit": 2},
        Fail,
        3,
    ),
    Case("equal to max passes", [(100, 5)] * 2, {"count": 2}, Pass, 2),
    Case("below min fails", [(100, 0)], {"max": None, "min": 0.01}, Fail, 1),
    Case("count 0 runs until the step ends", [(100, 1)] * 5, {}, Pass, None),
    Case("no traffic in a window is inconclusive", [(100, 1), (0, 0)], {}, Inconclusive, 2),
    Case(
        "inconclusive within its limit",
        [(0, 0), (100, 1)],
        {"inconclusive_limit": 1, "count": 2},
        Pass,
        2,
    ),
    Case(
        "too few requests overall is inconclusive",
        [(10, 0)] * 3,
        {"min_samples": 50},
        Inconclusive,
        None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_threshold_cases(case: Case) -> None:
    j = judge(**case.config)
    decided_at = None
    for i, obs in enumerate(series(case.windows), start=1):
        j.observe(obs)
        if decided_at is None and not isinstance(j.verdict(), Pending):
            decided_at = i
    final = j.conclude()
    assert isinstance(final, case.verdict), final
    assert decided_at == case.decided_after


def test_measurements_are_taken_once_per_interval_over_the_whole_interval() -> None:
    j = judge(interval=10.0, count=1)
    # ten 1 s scrapes: 9 errors in the first second only; 9/1000 < 5% passes,
    # where judging the single second (9%) would have failed.
    j.observe(pair(0, 1, (100, 9)))
    for t in range(1, 10):
        assert isinstance(j.verdict(), Pending)
        j.observe(pair(t, t + 1, (100, 0)))
    assert isinstance(j.verdict(), Pass)
    assert j.measurements[0].value == pytest.approx(0.009)


def test_source_errors_fail_only_beyond_the_consecutive_error_limit() -> None:
    j = judge(consecutive_error_limit=4)
    j.observe(pair(0, 1, (100, 1)))
    for t in range(2, 6):
        j.observe(missing(float(t), error=True))
    assert isinstance(j.verdict(), Pending)
    j.observe(missing(6.0, error=True))
    verdict = j.verdict()
    assert isinstance(verdict, Fail)
    assert "consecutiveErrorLimit" in verdict.reasons[0]


def test_a_missing_metric_is_inconclusive_never_pass() -> None:
    j = judge()
    j.observe(pair(0, 1, (100, 1)))
    j.observe(missing(2.0))
    verdict = j.verdict()
    assert isinstance(verdict, Inconclusive)
    assert "no series" in verdict.reason


def test_stopping_before_the_first_measurement_is_inconclusive_unlike_argo() -> None:
    j = judge(interval=60.0)
    j.observe(pair(0, 1, (100, 0)))
    verdict = j.conclude()
    assert isinstance(verdict, Inconclusive)
    assert "before any measurement" in verdict.reason


def test_a_decision_is_final_whatever_comes_after() -> None:
    j = judge()
    j.observe(pair(0, 1, (100, 50)))
    first = j.verdict()
    for t in range(1, 20):
        j.observe(pair(t, t + 1, (100, 0)))
    assert j.verdict() is first and j.conclude() is first


def test_failure_reasons_name_each_failed_measurement() -> None:
    j = judge(failure_limit=1)
    for obs in series([(100, 8), (100, 1), (100, 7)]):
        j.observe(obs)
    verdict = j.verdict()
    assert isinstance(verdict, Fail)
    assert verdict.reasons == (
        "error-rate: 2 failed measurements exceed failureLimit 1",
        "0.08 > max 0.05",
        "0.07 > max 0.05",
    )
    assert verdict.figures["failed"] == 2.0


@pytest.mark.parametrize("bad", [{"max": None, "min": None}, {"interval": 0.0}, {"count": -1}])
def test_nonsense_configurations_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        judge(**bad)


def test_a_query_gauge_is_measured_by_its_last_value() -> None:
    from kiln.core.analysis import Sample

    j = judge(metric=MetricKind.QUERY, max=0.5, interval=2.0, count=1)
    j.observe(Observation(canary=Sample(0, 1, value=0.9)))
    j.observe(Observation(canary=Sample(1, 2, value=0.4)))
    assert isinstance(j.verdict(), Pass)
