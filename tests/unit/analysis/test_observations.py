"""Readings, windows and figures: the data every judge stands on."""

from __future__ import annotations

import math

import pytest

from kiln.core.analysis import Counters, Gauge, Histogram, MetricKind, Missing, Sample, window
from kiln.core.analysis.observations import measure, observe, weight

H = Histogram((0.1, 0.2, 0.4), (10, 60, 90), 100)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.05, 0.05),  # inside the first bucket, which starts at 0
        (0.10, 0.10),  # exactly a bound
        (0.50, 0.18),  # 0.1 + 0.1 * (50 - 10) / 50
        (0.75, 0.30),  # 0.2 + 0.2 * (75 - 60) / 30
        (0.95, 0.40),  # in +Inf: the largest finite bound, like histogram_quantile
    ],
)
def test_quantiles_interpolate_inside_buckets_like_promql(q: float, expected: float) -> None:
    assert H.quantile(q) == pytest.approx(expected)


def test_an_empty_histogram_has_no_quantile() -> None:
    assert Histogram.empty((0.1, 0.2)).quantile(0.5) is None


@pytest.mark.parametrize(
    ("bounds", "cumulative", "total"),
    [((0.2, 0.1), (1, 2), 2), ((0.1, 0.2), (3, 2), 3), ((0.1,), (5,), 4), ((0.1,), (), 0)],
)
def test_malformed_histograms_are_refused(
    bounds: tuple[float, ...], cumulative: tuple[int, ...], total: int
) -> None:
    with pytest.raises(ValueError):
        Histogram(bounds, cumulative, total)


def test_a_window_is_the_difference_between_two_readings() -> None:
    before = Counters(10.0, 1000, 10, Histogram((0.1, 0.2), (500, 900), 1000))
    after = Counters(12.0, 1100, 13, Histogram((0.1, 0.2), (540, 990), 1100))
    sample = window(before, after)
    assert sample == Sample(10.0, 12.0, 100, 3, Histogram((0.1, 0.2), (40, 90), 100))


def test_a_first_reading_carries_no_traffic_so_history_is_never_judged() -> None:
    sample = window(None, Counters(5.0, 10_000, 900, None))
    assert isinstance(sample, Sample)
    assert (sample.requests, sample.errors) == (0, 0)


def test_a_counter_reset_counts_the_new_value_as_the_increase() -> None:
    sample = window(Counters(1.0, 5000, 50), Counters(2.0, 40, 2))
    assert isinstance(sample, Sample)
    assert (sample.requests, sample.errors) == (40, 2)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_query_value_that_is_not_a_number_is_missing(value: float) -> None:
    assert isinstance(window(None, Gauge(3.0, value)), Missing)


def test_a_missing_reading_stays_missing_and_is_never_zero() -> None:
    gone = Missing(4.0, "no series")
    assert window(Counters(1.0, 10, 0), gone) is gone


SAMPLE = Sample(0.0, 10.0, 200, 5, H, value=0.7)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (MetricKind.ERROR_RATE, 0.025),
        (MetricKind.REQUEST_RATE, 20.0),
        (MetricKind.LATENCY_P50, 0.18),
        (MetricKind.QUERY, 0.7),
    ],
)
def test_each_metric_kind_reads_its_figure(kind: MetricKind, expected: float) -> None:
    assert measure(kind, SAMPLE) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kind", "sample"),
    [
        (MetricKind.ERROR_RATE, Sample(0.0, 1.0)),
        (MetricKind.LATENCY_P95, Sample(0.0, 1.0, 10, 0)),
        (MetricKind.QUERY, Sample(0.0, 1.0, 10, 0)),
        (MetricKind.REQUEST_RATE, Sample(1.0, 1.0, 10, 0)),
    ],
)
def test_undefined_figures_are_none_not_zero(kind: MetricKind, sample: Sample) -> None:
    assert measure(kind, sample) is None


def test_router_metrics_weigh_requests_and_queries_weigh_one_value() -> None:
    assert weight(MetricKind.ERROR_RATE, SAMPLE) == 200
    assert weight(MetricKind.QUERY, SAMPLE) == 1
    assert weight(MetricKind.QUERY, Sample(0.0, 1.0)) == 0


def test_observe_pairs_canary_and_baseline_and_flags_an_absent_release() -> None:
    before = {"v1": Counters(0.0, 100, 1), "v2": Counters(0.0, 100, 1)}
    after = {"v1": Counters(1.0, 150, 1), "v2": Counters(1.0, 160, 4)}
    obs = observe(before, after, canary="v2", baseline="v1")
    assert obs.canary == Sample(0.0, 1.0, 60, 3)
    assert obs.baseline == Sample(0.0, 1.0, 50, 0)
    lost = observe(before, {"v1": Counters(1.0, 150, 1)}, canary="v2", baseline="v1")
    assert isinstance(lost.canary, Missing)
