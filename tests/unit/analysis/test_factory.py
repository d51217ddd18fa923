"""``judge_for`` maps each spec metric to the judge and settings it asks for."""

from __future__ import annotations

from typing import Any

import pytest

from kiln.core.analysis import (
    ComparativeJudge,
    Direction,
    MetricKind,
    SequentialJudge,
    ThresholdJudge,
    judge_for,
)
from kiln.core.spec.models import AnalysisMetric
from kiln.errors import ConfigError


def spec(**fields: Any) -> AnalysisMetric:
    return AnalysisMetric.model_validate({"name": "m", **fields}, strict=False)


def test_the_default_metric_is_a_sequential_error_rate_at_one_percent() -> None:
    j = judge_for(spec(metric="error-rate"))
    assert isinstance(j, SequentialJudge)
    assert j.config.metric is MetricKind.ERROR_RATE
    assert j.config.alpha == 0.01
    assert j.config.min_samples == 50
    assert j.config.direction is Direction.INCREASE


def test_threshold_fields_map_one_to_one() -> None:
    j = judge_for(
        spec(
            metric="latency-p99",
            judge="threshold",
            max=0.5,
            interval="30s",
            count=4,
            failureLimit=2,
            minSamples=10,
        )
    )
    assert isinstance(j, ThresholdJudge)
    cfg = j.config
    assert (cfg.metric, cfg.max, cfg.min, cfg.interval, cfg.count, cfg.failure_limit) == (
        MetricKind.LATENCY_P99,
        0.5,
        None,
        30.0,
        4,
        2,
    )
    assert cfg.min_samples == 10


def test_comparative_uses_one_minus_the_false_positive_rate_as_its_interval_level() -> None:
    j = judge_for(spec(metric="latency-p95", judge="comparative", falsePositiveRate=0.05))
    assert isinstance(j, ComparativeJudge)
    assert j.config.confidence == pytest.approx(0.95)
    assert j.config.metrics[0].metric is MetricKind.LATENCY_P95


@pytest.mark.parametrize(
    ("fields", "direction"),
    [
        ({"metric": "request-rate"}, Direction.DECREASE),
        ({"source": "prometheus", "query": "q", "max": 1.0}, Direction.INCREASE),
        ({"source": "prometheus", "query": "q", "min": 1.0}, Direction.DECREASE),
        ({"source": "prometheus", "query": "q"}, Direction.EITHER),
        ({"source": "prometheus", "query": "q", "min": 0.0, "max": 1.0}, Direction.EITHER),
    ],
)
def test_the_harmful_direction(fields: dict[str, Any], direction: Direction) -> None:
    j = judge_for(spec(**fields))
    assert isinstance(j, SequentialJudge)
    assert j.config.direction is direction


def test_a_router_metric_without_a_figure_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        judge_for(spec())
    assert "metric: error-rate" in info.value.hint


def test_each_call_gives_a_fresh_judge() -> None:
    metric = spec(metric="error-rate")
    assert judge_for(metric) is not judge_for(metric)


def test_every_metric_of_a_loaded_kiln_yaml_gets_its_judge() -> None:
    from kiln.core.spec.loader import load_spec

    text = b"""
service: shop
environments:
  - name: prod
    analysis:
      metrics:
        - {name: errors, metric: error-rate}
        - {name: slow, metric: latency-p95, judge: comparative, interval: 10s}
        - {name: budget, metric: error-rate, judge: threshold, max: 0.05, failureLimit: 1}
        - name: fds
          source: prometheus
          query: 'max(process_open_fds{release="{{release}}"})'
          judge: threshold
          max: 800
"""
    metrics = load_spec(text, source="kiln.yaml").environment("prod").analysis.metrics
    judges = [type(judge_for(m)).__name__ for m in metrics]
    assert judges == ["SequentialJudge", "ComparativeJudge", "ThresholdJudge", "ThresholdJudge"]
