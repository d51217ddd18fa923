"""The sequential judge: fails fast on regressions, never on too little data."""

from __future__ import annotations

import numpy as np
import pytest

from kiln.core.analysis import (
    Direction,
    Fail,
    Inconclusive,
    MetricKind,
    Observation,
    Pass,
    Pending,
    Sample,
    SequentialConfig,
    SequentialJudge,
)

from .helpers import missing, pair, traffic


def judge(metric: MetricKind = MetricKind.ERROR_RATE, **overrides: object) -> SequentialJudge:
    fields: dict[str, object] = {"name": metric.value, "metric": metric, "alpha": 0.01}
    fields.update(overrides)
    return SequentialJudge(SequentialConfig(**fields))  # type: ignore[arg-type]


def run(j: SequentialJudge, observations: list[Observation]) -> tuple[int, object]:
    for i, obs in enumerate(observations, start=1):
        j.observe(obs)
        status = j.verdict()
        if not isinstance(status, Pending):
            return i, status
    return len(observations), j.conclude()


@pytest.mark.parametrize(
    ("seed", "canary_error", "expected", "within"),
    [
        (11, 0.02, Fail, 200),  # 2x error rate at 50 req/s
        (12, 0.05, Fail, 30),  # 5x is found in seconds
        (13, 0.01, Pass, 600),  # A/A: an early pass once confidently within 1.5x
        (14, 0.005, Pass, 600),  # a better canary is never failed
    ],
)
def test_error_rate_cases(seed: int, canary_error: float, expected: type, within: int) -> None:
    seconds, verdict = run(judge(), traffic(seed, 600, canary_error=canary_error))
    assert isinstance(verdict, expected), verdict
    assert seconds <= within


def test_a_2x_latency_regression_fails_on_the_share_above_the_baseline_p95() -> None:
    obs = traffic(21, 120, canary_error=0.01, canary_latency_scale=2.0, latency=True)
    seconds, verdict = run(judge(MetricKind.LATENCY_P95), obs)
    assert isinstance(verdict, Fail)
    assert seconds < 60
    assert "slower than" in verdict.reasons[0]
    assert verdict.figures["latency_bound"] in (0.1, 0.25)


def test_equal_latency_does_not_fail() -> None:
    obs = traffic(22, 300, canary_error=0.01, latency=True)
    _, verdict = run(judge(MetricKind.LATENCY_P95), obs)
    assert not isinstance(verdict, Fail)


def test_fewer_than_min_samples_is_inconclusive_never_pass() -> None:
    j = judge(min_samples=1000)
    for obs in traffic(31, 10, canary_error=0.0):  # 500 perfect requests
        j.observe(obs)
    assert isinstance(j.verdict(), Pending)
    verdict = j.conclude()
    assert isinstance(verdict, Inconclusive)
    assert "fewer than minSamples 1000" in verdict.reason


def test_a_missing_metric_is_inconclusive() -> None:
    j = judge()
    for t in range(30):
        j.observe(missing(float(t)))
    verdict = j.conclude()
    assert isinstance(verdict, Inconclusive)
    assert "no series" in verdict.reason


def test_a_missing_baseline_is_inconclusive() -> None:
    j = judge()
    for t in range(30):
        j.observe(pair(t, t + 1, (100, 0), baseline=None))
    assert isinstance(j.conclude(), Inconclusive)


def test_a_fail_states_rates_and_evidence() -> None:
    _, verdict = run(judge(), traffic(12, 600, canary_error=0.05))
    assert isinstance(verdict, Fail)
    reason = verdict.reasons[0]
    assert reason.startswith("error-rate: canary error rate")
    assert "1/alpha = 100" in reason
    assert verdict.figures["log_evidence"] >= verdict.figures["log_threshold"]


def test_without_an_early_pass_margin_a_good_canary_passes_only_at_the_end() -> None:
    j = judge(pass_margin=None)
    seconds, verdict = run(j, traffic(13, 300, canary_error=0.01))
    assert seconds == 300 and isinstance(verdict, Pass)


def values(start: int, canary: list[float], baseline: list[float]) -> list[Observation]:
    return [
        Observation(
            canary=Sample(start + i, start + i + 1, value=c),
            baseline=Sample(start + i, start + i + 1, value=b),
        )
        for i, (c, b) in enumerate(zip(canary, baseline, strict=True))
    ]


def test_a_query_value_that_rises_fails_when_higher_is_harmful() -> None:
    base = [1.0 + 0.01 * (i % 5) for i in range(60)]
    high = [2.0 + 0.01 * (i % 5) for i in range(60)]
    _, verdict = run(judge(MetricKind.QUERY, min_samples=5), values(0, high, base))
    assert isinstance(verdict, Fail)
    _, verdict = run(
        judge(MetricKind.QUERY, min_samples=5, direction=Direction.DECREASE), values(0, high, base)
    )
    assert not isinstance(verdict, Fail)


def test_error_rates_cannot_be_judged_for_decreases() -> None:
    with pytest.raises(ValueError):
        judge(direction=Direction.DECREASE)


@pytest.mark.parametrize(
    "bad", [{"alpha": 0.0}, {"alpha": 0.6}, {"min_samples": 0}, {"effect": 0.0}]
)
def test_nonsense_configurations_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        judge(**bad)


def test_a_canary_and_baseline_with_no_errors_at_all_pass_at_the_end() -> None:
    j = judge()
    for t in range(100):
        j.observe(pair(t, t + 1, (50, 0), baseline=(50, 0)))
    assert isinstance(j.verdict(), Pending)  # no events: no evidence either way
    assert isinstance(j.conclude(), Pass)


def test_a_handful_of_canary_only_errors_fails_without_waiting_for_a_level() -> None:
    # 13 canary errors against none in as many baseline requests: the share
    # test needs no estimate of the error level, so it fails during the step.
    j = judge()
    seconds, verdict = run(
        j, [pair(t, t + 1, (50, 1 if t % 7 == 0 else 0), (50, 0)) for t in range(100)]
    )
    assert isinstance(verdict, Fail), verdict
    assert seconds < 100
    assert verdict.figures["canary_events"] >= 10 and verdict.figures["baseline_events"] == 0


def test_a_latency_metric_without_histograms_is_inconclusive() -> None:
    j = judge(MetricKind.LATENCY_P95)
    for t in range(100):
        j.observe(pair(t, t + 1, (50, 0), baseline=(50, 0)))
    verdict = j.conclude()
    assert isinstance(verdict, Inconclusive)
    assert "no latency histogram" in verdict.reason


# --- the share-of-events test: its guarantees, measured on simulated traffic ------------


def _first_verdicts(runs: int, seed: int, *, canary_error: float, rate: int, seconds: int):
    """Vectorised replay of many runs through real judges would be slow; use 1 s batches."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        j = judge()
        xc = rng.binomial(rate, canary_error, seconds)
        xb = rng.binomial(rate, 0.01, seconds)
        verdict: object = None
        for t in range(seconds):
            j.observe(pair(t, t + 1, (rate, int(xc[t])), (rate, int(xb[t]))))
            status = j.verdict()
            if not isinstance(status, Pending):
                verdict = (t + 1, status)
                break
        out.append(verdict if verdict is not None else (seconds, j.conclude()))
    return out


def test_type_one_errors_on_simulated_a_a_traffic_stay_under_alpha() -> None:
    # 150 A/A runs of 300 s at 50 req/s and 1% errors. Ville's bound is 1%: if
    # the true rate were 1%, 6 or more false alarms would have probability < 2%.
    results = _first_verdicts(150, 7, canary_error=0.01, rate=50, seconds=300)
    false_alarms = sum(isinstance(v, Fail) for _, v in results)
    assert false_alarms <= 5


def test_a_doubled_error_rate_is_detected_in_most_runs_within_two_minutes() -> None:
    results = _first_verdicts(40, 8, canary_error=0.02, rate=50, seconds=120)
    detected = sorted(t for t, v in results if isinstance(v, Fail))
    assert len(detected) >= 30
    assert detected[len(detected) // 2] <= 90


def test_no_verdict_at_all_before_min_samples_even_with_overwhelming_evidence() -> None:
    j = judge(min_samples=500)
    for t in range(9):  # 450 canary requests, every one an error
        j.observe(pair(t, t + 1, (50, 50), (50, 0)))
        assert isinstance(j.verdict(), Pending)
    assert isinstance(j.conclude(), Inconclusive)


def test_no_early_pass_before_min_samples() -> None:
    j = judge(min_samples=10_000)
    for t in range(100):  # 5000 requests each, plenty of errors, identical sides
        j.observe(pair(t, t + 1, (50, 5), (50, 5)))
    assert isinstance(j.verdict(), Pending)
    assert j.verdict().figures["log_pass_evidence"] > j.log_threshold  # would have passed
    assert isinstance(j.conclude(), Inconclusive)


def test_a_common_error_level_that_moves_during_the_step_is_no_evidence() -> None:
    # Both sides jump from 1% to 20% errors together: the share test conditions
    # on each batch's errors, so the jump itself says nothing against the canary.
    j = judge(pass_margin=None)
    for t in range(300):
        errors = 10 if 100 <= t < 200 else 1
        j.observe(pair(t, t + 1, (50, errors), (50, errors)))
    assert isinstance(j.conclude(), Pass)


def test_unequal_traffic_shares_are_accounted_for() -> None:
    # The canary gets a quarter of the baseline's traffic at the same error rate:
    # its share of errors is 1/5, which is no evidence of harm.
    j = judge(pass_margin=None)
    for t in range(300):
        j.observe(pair(t, t + 1, (25, 1 if t % 4 == 0 else 0), (100, 1)))
    assert isinstance(j.conclude(), Pass)
    assert j.verdict().figures["log_evidence"] < 0


def test_the_prior_must_be_a_probability_mixture() -> None:
    with pytest.raises(ValueError):
        judge(prior=((1.0, 0.5), (3.0, 0.2)))
    with pytest.raises(ValueError):
        judge(prior=((0.0, 1.0),))
