"""The comparative judge classifies like Kayenta's MannWhitneyClassifier and scores like it."""

from __future__ import annotations

import numpy as np
import pytest

from kiln.core.analysis import (
    ComparativeConfig,
    ComparativeJudge,
    ComparedMetric,
    Direction,
    Fail,
    Inconclusive,
    MetricKind,
    Observation,
    Pass,
    Pending,
    Sample,
)
from kiln.core.analysis.comparative import (
    Classification,
    MetricResult,
    classify,
    hodges_lehmann,
    score,
)

from .helpers import traffic

RNG = np.random.default_rng(7)
BASE = list(RNG.normal(100.0, 5.0, 30))
HIGHER = list(RNG.normal(130.0, 5.0, 30))
LOWER = list(RNG.normal(70.0, 5.0, 30))
SAME = list(RNG.normal(100.0, 5.0, 30))


@pytest.mark.parametrize(
    ("canary", "direction", "expected"),
    [
        (HIGHER, Direction.INCREASE, Classification.HIGH),
        (HIGHER, Direction.EITHER, Classification.HIGH),
        (HIGHER, Direction.DECREASE, Classification.PASS),  # harmless direction
        (LOWER, Direction.DECREASE, Classification.LOW),
        (LOWER, Direction.INCREASE, Classification.PASS),
        (SAME, Direction.EITHER, Classification.PASS),
        (BASE, Direction.EITHER, Classification.PASS),  # identical series
        ([], Direction.EITHER, Classification.NODATA),
    ],
)
def test_classification_table(
    canary: list[float], direction: Direction, expected: Classification
) -> None:
    result = classify(canary, BASE, direction=direction, confidence=0.99)
    assert result.classification is expected


def test_a_handful_of_points_never_classifies_high_however_far_apart() -> None:
    # 3 vs 3: the smallest two-sided Mann-Whitney p-value is 0.1 > 1%.
    result = classify(
        [9.0, 9.5, 10.0], [1.0, 1.5, 2.0], direction=Direction.INCREASE, confidence=0.99
    )
    assert result.classification is Classification.PASS
    assert result.p_value == pytest.approx(0.1)


def test_hodges_lehmann_interval_brackets_the_true_shift() -> None:
    estimate, low, high = hodges_lehmann(HIGHER, BASE, 0.99)
    assert low < estimate < high
    assert low < 30.0 < high


def test_hodges_lehmann_of_a_pure_shift_is_the_shift() -> None:
    base = [float(x) for x in range(20)]
    estimate, _, _ = hodges_lehmann([x + 3.0 for x in base], base, 0.95)
    assert estimate == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["pass", "pass"], 100.0),
        (["pass", "high"], 50.0),
        (["pass", "pass", "pass", "low"], 75.0),
        (["pass", "nodata"], 100.0),
        (["nodata"], None),
    ],
)
def test_score_is_the_share_of_metrics_that_passed(
    labels: list[str], expected: float | None
) -> None:
    results = [MetricResult(Classification(label)) for label in labels]
    assert score(results) == expected


def judge(**overrides: object) -> ComparativeJudge:
    fields: dict[str, object] = {
        "name": "error-rate",
        "metrics": (ComparedMetric("error-rate", MetricKind.ERROR_RATE),),
        "interval": 10.0,
        "min_samples": 50,
    }
    fields.update(overrides)
    return ComparativeJudge(ComparativeConfig(**fields))  # type: ignore[arg-type]


def run(j: ComparativeJudge, observations: list[Observation]) -> tuple[int, object]:
    for i, obs in enumerate(observations, start=1):
        j.observe(obs)
        status = j.verdict()
        if not isinstance(status, Pending):
            return i, status
    return len(observations), j.conclude()


def test_a_5x_error_rate_fails_during_the_step() -> None:
    seconds, verdict = run(judge(), traffic(1, 600, canary_error=0.05))
    assert isinstance(verdict, Fail)
    assert seconds < 600
    assert "below marginal" in verdict.reasons[0]
    assert "canary high" in verdict.reasons[1]


def test_an_identical_canary_passes_at_the_end() -> None:
    seconds, verdict = run(judge(), traffic(2, 300, canary_error=0.01))
    assert isinstance(verdict, Pass)
    assert seconds == 300
    assert verdict.figures["score"] == 100.0


def test_too_few_points_is_inconclusive() -> None:
    _, verdict = run(judge(), traffic(3, 20, canary_error=0.01))
    assert isinstance(verdict, Inconclusive)


def test_a_marginal_score_is_inconclusive_at_the_end() -> None:
    both = (
        ComparedMetric("error-rate", MetricKind.ERROR_RATE),
        ComparedMetric("p50", MetricKind.LATENCY_P50),
    )
    j = judge(metrics=both, pass_score=90.0, marginal_score=40.0)
    obs = traffic(4, 300, canary_error=0.01, canary_latency_scale=3.0, latency=True)
    _, verdict = run(j, obs)
    assert isinstance(verdict, Inconclusive)
    assert "marginal score 50" in verdict.reason


def test_a_missing_baseline_is_inconclusive() -> None:
    j = judge()
    for t in range(60):
        j.observe(Observation(canary=Sample(t, t + 1, 50, 1), baseline=None))
    assert isinstance(j.conclude(), Inconclusive)


@pytest.mark.parametrize(
    "bad",
    [
        {"metrics": ()},
        {"confidence": 1.0},
        {"pass_score": 50.0, "marginal_score": 60.0},
        {"judge_every": 0},
    ],
)
def test_nonsense_configurations_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        judge(**bad)
