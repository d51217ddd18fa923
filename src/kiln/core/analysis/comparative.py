"""The comparative judge, in the style of Kayenta's NetflixACAJudge.

Source followed: Spinnaker's "How canary judgment works" (spinnaker.io/guides/
user/canary/judge) and Kayenta's judge (spinnaker/kayenta, kayenta-judge:
``NetflixACAJudge``, ``MannWhitneyClassifier``, ``WeightedSumScorer``), and
Argo Rollouts' Kayenta provider for how a score maps to a result.

* Data points: one value per side and per ``interval`` window (Kayenta's
  ``step``): the window's error rate, latency quantile, request rate or query
  value, for the canary and for its baseline -- the stable release, or with
  ``canary.baseline: fresh`` instances of the stable release started with the
  canary and given the same share of traffic, so that both sides have the same
  age, warmth and load (``kiln.core.rollout.baseline``). Windows with no value
  are dropped (Kayenta removes NaNs).
* Per-metric classification (MannWhitneyClassifier): a Mann-Whitney U test of
  canary against baseline (``scipy.stats.mannwhitneyu``, two-sided) with the
  Hodges-Lehmann estimate of the shift and its ``confidence`` interval. The
  metric is **High** when the interval's lower end is above
  ``effect_fraction * |estimate|`` (and an increase is harmful), **Low** when
  its upper end is below ``-effect_fraction * |estimate|`` (and a decrease is
  harmful), **Pass** otherwise, **NoData** when a side has no points.
  NetflixACAJudge uses fraction 0.25 and a 98% interval; kiln uses
  ``1 - falsePositiveRate`` (99% by default).
* Score (WeightedSumScorer, one group): ``100 * pass / (pass + high + low)``.
* Result (Argo's Kayenta provider): score >= ``pass_score`` passes, a score
  below ``marginal_score`` fails, in between is marginal, which kiln reports as
  Inconclusive at the end of the step. During the step, like Spinnaker's
  intermediate canary runs, a score below marginal fails at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.special import ndtri
from scipy.stats import mannwhitneyu

from kiln.core.analysis.observations import (
    Direction,
    MetricKind,
    Missing,
    Observation,
    Sample,
    measure,
    weight,
)
from kiln.core.analysis.verdicts import Fail, Figures, Inconclusive, Pass, Pending, Status, Verdict
from kiln.core.analysis.windows import Windower

# A rank test on fewer points per side has no power at all at 99%: with 3 vs 3
# the smallest two-sided p-value is 0.1. Below this, the answer is "not yet".
MIN_POINTS = 3


class Classification(StrEnum):
    PASS = "pass"  # noqa: S105 - a classification, not a password
    HIGH = "high"
    LOW = "low"
    NODATA = "nodata"


@dataclass(frozen=True)
class MetricResult:
    classification: Classification
    estimate: float = 0.0
    ci_low: float = 0.0
    ci_high: float = 0.0
    p_value: float = math.nan
    ratio: float = math.nan


def hodges_lehmann(
    canary: Sequence[float], baseline: Sequence[float], confidence: float
) -> tuple[float, float, float]:
    """The shift estimate (median of pairwise differences) and its confidence interval.

    The interval takes order statistics of the ``m*n`` differences at the ranks
    the Wilcoxon rank-sum distribution gives, with its normal approximation (as
    R's ``wilcox.test(conf.int=TRUE)`` does for large samples; ties ignored).
    """
    x = np.asarray(canary, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    m, n = x.size, y.size
    mn = m * n
    z = float(ndtri(1.0 - (1.0 - confidence) / 2.0))
    k = math.floor(mn / 2.0 - z * math.sqrt(mn * (m + n + 1) / 12.0))
    k = min(max(k, 0), mn - 1)
    return float(np.median(diffs)), float(diffs[k]), float(diffs[mn - 1 - k])


def classify(
    canary: Sequence[float],
    baseline: Sequence[float],
    *,
    direction: Direction,
    confidence: float,
    effect_fraction: float = 0.25,
) -> MetricResult:
    """Kayenta's MannWhitneyClassifier on two series of data points."""
    if len(canary) == 0 or len(baseline) == 0:
        return MetricResult(Classification.NODATA)
    mean_b = float(np.mean(baseline))
    ratio = float(np.mean(canary)) / mean_b if mean_b != 0 else math.nan
    if list(canary) == list(baseline):
        return MetricResult(Classification.PASS, ratio=ratio)
    estimate, low, high = hodges_lehmann(canary, baseline, confidence)
    bound = effect_fraction * abs(estimate)
    up = direction in (Direction.INCREASE, Direction.EITHER) and low > bound
    down = direction in (Direction.DECREASE, Direction.EITHER) and high < -bound
    if not (up or down):
        return MetricResult(Classification.PASS, estimate, low, high, math.nan, ratio)
    # Kayenta classifies on the interval alone; with a handful of points the
    # widest achievable interval still "excludes" the bound, so the rank test's
    # own p-value must also be below 1 - confidence. (Only computed here, where
    # it can change the answer: it is the costly part.)
    p_value = float(mannwhitneyu(canary, baseline, alternative="two-sided").pvalue)
    if p_value >= 1.0 - confidence:
        label = Classification.PASS
    else:
        label = Classification.HIGH if up else Classification.LOW
    return MetricResult(label, estimate, low, high, p_value, ratio)


def score(results: Sequence[MetricResult]) -> float | None:
    """WeightedSumScorer with one group: the percentage of metrics that passed."""
    counted = [r for r in results if r.classification is not Classification.NODATA]
    if not counted:
        return None
    passed = sum(1 for r in counted if r.classification is Classification.PASS)
    return 100.0 * passed / len(counted)


@dataclass(frozen=True)
class ComparedMetric:
    name: str
    metric: MetricKind
    direction: Direction = Direction.INCREASE


@dataclass(frozen=True)
class ComparativeConfig:
    name: str
    metrics: tuple[ComparedMetric, ...]
    interval: float = 5.0
    confidence: float = 0.99
    effect_fraction: float = 0.25
    # Argo Rollouts' documented Kayenta example uses pass 90, marginal 75.
    pass_score: float = 90.0
    marginal_score: float = 75.0
    min_samples: int = 50
    # Windows between intermediate judgements (Spinnaker's canary "interval"
    # against its "step"); each look can fail the canary, so fewer looks mean
    # fewer false alarms and later detection.
    judge_every: int = 1

    def __post_init__(self) -> None:
        if self.judge_every < 1:
            raise ValueError("judge_every is at least 1")
        if not self.metrics:
            raise ValueError("a comparative judge compares at least one metric")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError("confidence is between 0.5 and 1")
        if not 0 <= self.marginal_score <= self.pass_score <= 100:
            raise ValueError("0 <= marginal score <= pass score <= 100")


class ComparativeJudge:
    def __init__(self, config: ComparativeConfig) -> None:
        self.config = config
        self._windows = Windower(config.interval)
        self._points: dict[str, tuple[list[float], list[float]]] = {
            m.name: ([], []) for m in config.metrics
        }
        self._samples = 0
        self._windows_closed = 0
        self._missing: Missing | None = None
        self._decided: Verdict | None = None
        self._last_figures: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self.config.name

    def observe(self, observation: Observation) -> None:
        if self._decided is not None:
            return
        for closed in self._windows.add(observation):
            if isinstance(closed.canary, Missing):
                self._missing = closed.canary
                continue
            if not isinstance(closed.baseline, Sample):
                self._missing = closed.baseline or Missing(closed.end, "no baseline")
                continue
            self._samples += weight(self.config.metrics[0].metric, closed.canary)
            for m in self.config.metrics:
                canary_value = measure(m.metric, closed.canary)
                baseline_value = measure(m.metric, closed.baseline)
                if canary_value is not None and baseline_value is not None:
                    self._points[m.name][0].append(canary_value)
                    self._points[m.name][1].append(baseline_value)
            self._windows_closed += 1
            if self._windows_closed % self.config.judge_every == 0:
                self._decided = self._judge(final=False)

    def verdict(self) -> Status:
        if self._decided is not None:
            return self._decided
        points = min(len(c) for c, _ in self._points.values())
        return Pending(f"{points} data points per side", dict(self._last_figures))

    def conclude(self) -> Verdict:
        if self._decided is None:
            self._decided = self._judge(final=True)
        if self._decided is None:  # pragma: no cover - final judging always decides
            self._decided = Inconclusive("no decision")
        return self._decided

    def results(self) -> dict[str, MetricResult]:
        cfg = self.config
        return {
            m.name: classify(
                self._points[m.name][0],
                self._points[m.name][1],
                direction=m.direction,
                confidence=cfg.confidence,
                effect_fraction=cfg.effect_fraction,
            )
            for m in cfg.metrics
        }

    def _judge(self, *, final: bool) -> Verdict | None:
        cfg = self.config
        points = min(len(c) for c, _ in self._points.values())
        enough = points >= MIN_POINTS and self._samples >= cfg.min_samples
        if not enough:
            if not final:
                return None
            if points == 0 and self._missing is not None:
                return Inconclusive(f"{cfg.name}: {self._missing.reason}", self._last_figures)
            return Inconclusive(
                f"{cfg.name}: {points} data points per side and {self._samples} samples; "
                f"need {MIN_POINTS} and minSamples {cfg.min_samples}",
                self._last_figures,
            )
        results = self.results()
        total = score(list(results.values()))
        figures = self._figures(results, total)
        self._last_figures = dict(figures)
        if total is None:
            return Inconclusive(f"{cfg.name}: no metric had data", figures) if final else None
        if total < cfg.marginal_score:
            reasons = tuple(
                f"{name}: canary {r.classification.value} vs baseline "
                f"(shift {r.estimate:.4g}, {cfg.confidence:.0%} interval "
                f"[{r.ci_low:.4g}, {r.ci_high:.4g}], p={r.p_value:.3g})"
                for name, r in results.items()
                if r.classification in (Classification.HIGH, Classification.LOW)
            )
            head = f"{cfg.name}: score {total:.0f} below marginal {cfg.marginal_score:g}"
            return Fail((head, *reasons), figures)
        if not final:
            return None
        if total >= cfg.pass_score:
            return Pass(f"{cfg.name}: score {total:.0f} >= pass {cfg.pass_score:g}", figures)
        return Inconclusive(
            f"{cfg.name}: marginal score {total:.0f} (pass {cfg.pass_score:g}, "
            f"marginal {cfg.marginal_score:g})",
            figures,
        )

    def _figures(self, results: dict[str, MetricResult], total: float | None) -> Figures:
        figures: dict[str, float] = {"samples": float(self._samples)}
        if total is not None:
            figures["score"] = total
        for name, r in results.items():
            if not math.isnan(r.p_value):
                figures[f"{name}.p_value"] = r.p_value
            figures[f"{name}.shift"] = r.estimate
            figures[f"{name}.points"] = float(len(self._points[name][0]))
        return figures
