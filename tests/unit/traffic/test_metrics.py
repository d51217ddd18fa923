"""Router metrics: histogram quantiles and the JSON the admin API exchanges."""

from __future__ import annotations

import pytest

from kiln.core.traffic.metrics import (
    LATENCY_BOUNDS,
    BackendHealth,
    DataPlaneHealth,
    LatencyHistogram,
    ReleaseMetrics,
    RouterMetrics,
    health_from_dict,
    metrics_from_dict,
)
from kiln.errors import InvalidInput


def hist(counts: dict[int, int]) -> LatencyHistogram:
    values = [0] * (len(LATENCY_BOUNDS) + 1)
    for i, c in counts.items():
        values[i] = c
    return LatencyHistogram(LATENCY_BOUNDS, tuple(values), 1.0)


def test_quantiles_are_bucket_upper_bounds() -> None:
    h = hist({0: 90, 4: 9, 8: 1})
    assert h.quantile(0.5) == LATENCY_BOUNDS[0]
    assert h.quantile(0.99) == LATENCY_BOUNDS[4]
    assert h.quantile(1.0) == LATENCY_BOUNDS[8]


def test_an_empty_or_overflowing_histogram_has_no_quantile() -> None:
    assert hist({}).quantile(0.5) is None
    assert hist({len(LATENCY_BOUNDS): 1}).quantile(0.5) is None


def test_histograms_need_one_count_per_bucket_plus_overflow() -> None:
    with pytest.raises(InvalidInput):
        LatencyHistogram((1.0,), (1,), 0.0)


def test_metrics_round_trip_and_errors_add_5xx_and_connect_failures() -> None:
    m = RouterMetrics(7, (ReleaseMetrics("a", 100, 3, 2, hist({1: 100})),))
    back = metrics_from_dict(m.to_dict())
    assert back == m
    rel = back.of("a")
    assert rel is not None and rel.errors == 5
    assert back.of("b") is None


def test_health_round_trips() -> None:
    h = DataPlaneHealth(True, 3, (BackendHealth("a", "h:1", False, 4),), "serving")
    assert health_from_dict(h.to_dict()) == h


def test_malformed_metrics_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        metrics_from_dict({"releases": {"a": {"requests": 1}}})
