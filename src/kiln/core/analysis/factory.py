"""``judge_for``: the judge an ``AnalysisMetric`` of ``kiln.yaml`` asks for.

Pure: a spec in, a fresh judge out. Field mapping:

* ``max`` / ``min``: threshold bounds; for the other judges, the harmful
  direction of a query's value.
* ``interval``: threshold, time between measurements; comparative, one data
  point per side per interval. The sequential judge looks after every scrape.
* ``count``, ``failureLimit``: threshold only (Argo semantics).
* ``falsePositiveRate``: sequential, alpha; comparative, 1 - interval level.
* ``minSamples``: canary requests (router) or values (query) before any
  verdict other than Fail (threshold) or before any verdict (the others).

For a Prometheus query the harmful direction comes from the bounds: ``max``
means "higher is worse", ``min`` "lower is worse"; neither or both means a
change either way is judged.
"""

from __future__ import annotations

from kiln.core.analysis.comparative import ComparativeConfig, ComparativeJudge, ComparedMetric
from kiln.core.analysis.observations import Direction, MetricKind
from kiln.core.analysis.sequential import SequentialConfig, SequentialJudge
from kiln.core.analysis.threshold import ThresholdConfig, ThresholdJudge
from kiln.core.analysis.verdicts import Judge
from kiln.core.spec.models import AnalysisMetric, MetricSourceKind
from kiln.core.spec.models import Judge as JudgeKind
from kiln.errors import ConfigError


def metric_kind(spec: AnalysisMetric) -> MetricKind:
    if spec.source is MetricSourceKind.PROMETHEUS:
        return MetricKind.QUERY
    if spec.metric is None:
        raise ConfigError(
            f"analysis metric {spec.name!r} has source: router but no metric",
            hint="add metric: error-rate (or latency-p95, latency-p99, request-rate)",
        )
    return MetricKind.of(spec.metric)


def direction_for(spec: AnalysisMetric) -> Direction:
    kind = metric_kind(spec)
    if kind is MetricKind.REQUEST_RATE:
        return Direction.DECREASE
    if kind is not MetricKind.QUERY:
        return Direction.INCREASE
    if spec.max is not None and spec.min is None:
        return Direction.INCREASE
    if spec.min is not None and spec.max is None:
        return Direction.DECREASE
    return Direction.EITHER


def judge_for(spec: AnalysisMetric) -> Judge:
    """A new judge for one metric of an environment's analysis."""
    kind = metric_kind(spec)
    if spec.judge is JudgeKind.THRESHOLD:
        return ThresholdJudge(
            ThresholdConfig(
                name=spec.name,
                metric=kind,
                max=spec.max,
                min=spec.min,
                interval=spec.interval,
                count=spec.count,
                failure_limit=spec.failure_limit,
                min_samples=spec.min_samples,
            )
        )
    direction = direction_for(spec)
    if spec.judge is JudgeKind.COMPARATIVE:
        return ComparativeJudge(
            ComparativeConfig(
                name=spec.name,
                metrics=(ComparedMetric(spec.name, kind, direction),),
                interval=spec.interval,
                confidence=1.0 - spec.false_positive_rate,
                min_samples=spec.min_samples,
            )
        )
    return SequentialJudge(
        SequentialConfig(
            name=spec.name,
            metric=kind,
            alpha=spec.false_positive_rate,
            min_samples=spec.min_samples,
            direction=direction,
        )
    )
