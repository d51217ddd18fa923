"""The sequential, anytime-valid judge: stop as soon as the evidence is enough.

It may be asked after every scrape without inflating its false-alarm rate,
because its evidence is a mixture likelihood ratio (``kiln.core.analysis.msprt``)
and Ville's inequality bounds the chance that it *ever* crosses ``1/alpha``
when the canary is no worse than the baseline. So:

* **Fail** the moment the evidence that the canary is worse crosses ``1/alpha``
  (``alpha`` is the metric's ``falsePositiveRate``);
* **Pass early** the moment the confidence sequence for the difference lies
  entirely below ``pass_margin`` times the baseline's level (the canary is
  confidently no more than that much worse) -- a false early pass on a real
  regression of that size has probability at most ``alpha`` as well;
* at the end of the step, **Pass** if nothing was found over at least
  ``min_samples`` canary requests, otherwise **Inconclusive**.

What it tests, per metric:

* ``error-rate``: the canary's error proportion against the fresh baseline's,
  cumulated from the windows it is fed (two-stream normal mSPRT on the
  difference of proportions, Johari et al. 2022).
* ``latency-pNN``: the proportion of requests slower than a bucket bound ``b``,
  where ``b`` is the smallest histogram bound at or above the baseline's NN-th
  percentile when the judge has its first ``min_samples``; a 2x slower canary
  sends far more than ``1 - NN%`` of its requests above ``b``. This needs only
  bucket counts, which is all a router's histogram has.
* ``request-rate`` and query values: the mean of per-window values, with the
  variance estimated from their spread (a plug-in normal mSPRT; approximate with
  few windows, so ``min_samples`` counts windows here).

The mixture scale ``tau`` is the size of regression the test is tuned for:
``effect`` (default 1.0, a doubling) times the baseline level, fixed once at
the first decision point so the mixture does not move with the data after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kiln.core.analysis.msprt import (
    cs_half_width,
    log_lr_one_sided,
    log_lr_two_sided,
    proportion_difference,
)
from kiln.core.analysis.observations import (
    Direction,
    Histogram,
    MetricKind,
    Missing,
    Observation,
    Sample,
    measure,
)
from kiln.core.analysis.verdicts import Fail, Inconclusive, Pass, Pending, Status, Verdict


@dataclass(frozen=True)
class SequentialConfig:
    name: str
    metric: MetricKind
    alpha: float = 0.01
    min_samples: int = 50
    direction: Direction = Direction.INCREASE
    effect: float = 1.0
    tolerance: float = 0.0
    pass_margin: float | None = 0.5
    # Events (errors, or requests slower than the latency bound) pooled over
    # both sides before the mixture scale is fixed: ten events read the level
    # to about +-30%, where a first second's one or two errors would not.
    min_events: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValueError("alpha is between 0 and 0.5")
        if self.min_samples < 1 or self.effect <= 0 or self.tolerance < 0:
            raise ValueError("min_samples >= 1, effect > 0 and tolerance >= 0")
        per_request = self.metric is MetricKind.ERROR_RATE or self.metric.quantile is not None
        if per_request and self.direction is not Direction.INCREASE:
            raise ValueError("error rates and latencies are judged for increases only")


@dataclass
class _Tally:
    requests: int = 0
    errors: int = 0
    latency: Histogram | None = None
    values: list[float] = field(default_factory=list)

    def add(self, sample: Sample, kind: MetricKind) -> None:
        self.requests += sample.requests
        self.errors += sample.errors
        if sample.latency is not None:
            self.latency = (
                sample.latency if self.latency is None else self.latency.plus(sample.latency)
            )
        if not kind.counts_requests or kind is MetricKind.REQUEST_RATE:
            value = measure(kind, sample)
            if value is not None:
                self.values.append(value)


@dataclass(frozen=True)
class _Evidence:
    theta: float
    var: float
    canary_level: float
    baseline_level: float
    pooled_level: float
    events: int = 0


class SequentialJudge:
    def __init__(self, config: SequentialConfig) -> None:
        self.config = config
        self._canary = _Tally()
        self._baseline = _Tally()
        self._missing: Missing | None = None
        self._tau: float | None = None
        self._bound: float | None = None
        self._decided: Verdict | None = None
        self._figures: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def log_threshold(self) -> float:
        return math.log(1.0 / self.config.alpha)

    def observe(self, observation: Observation) -> None:
        if self._decided is not None:
            return
        canary, baseline = observation.canary, observation.baseline
        if isinstance(canary, Missing):
            self._missing = canary
            return
        if not isinstance(baseline, Sample):
            self._missing = baseline or Missing(canary.end, "no baseline to compare with")
            return
        self._canary.add(canary, self.config.metric)
        self._baseline.add(baseline, self.config.metric)
        self._decided = self._test()

    def verdict(self) -> Status:
        if self._decided is not None:
            return self._decided
        return Pending(self._progress(), dict(self._figures))

    def conclude(self) -> Verdict:
        if self._decided is not None:
            return self._decided
        cfg = self.config
        figures = dict(self._figures)
        have = self._samples()
        if have == 0 and self._missing is not None:
            verdict: Verdict = Inconclusive(f"{cfg.name}: {self._missing.reason}", figures)
        elif have < cfg.min_samples:
            verdict = Inconclusive(
                f"{cfg.name}: {have} samples observed, fewer than minSamples {cfg.min_samples}",
                figures,
            )
        else:
            # Too few events ever to fix the mixture scale: one last look with
            # what there is, so a handful of canary-only errors still counts.
            final = self._test(final=True) if self._tau is None else None
            if final is not None:
                verdict = final
            elif self._tau is None and not self._figures:
                verdict = Inconclusive(
                    f"{cfg.name}: no comparable data (too little baseline traffic, "
                    "or no latency histogram)",
                    figures,
                )
            else:
                verdict = Pass(
                    f"{cfg.name}: no regression detected at false-positive rate {cfg.alpha:g} "
                    f"over {have} samples",
                    dict(self._figures),
                )
        self._decided = verdict
        return verdict

    # --- internals -----------------------------------------------------------------

    @property
    def _per_request(self) -> bool:
        """Error rates and latencies are tested per request; other figures per window."""
        kind = self.config.metric
        return kind is MetricKind.ERROR_RATE or kind.quantile is not None

    def _samples(self) -> int:
        if self._per_request:
            return self._canary.requests
        return len(self._canary.values)

    def _progress(self) -> str:
        have, need = self._samples(), self.config.min_samples
        if have < need:
            return f"{have}/{need} samples before the first decision"
        evidence = self._figures.get("log_evidence", float("-inf"))
        return f"evidence {evidence:.2f} of {self.log_threshold:.2f} needed to fail"

    def _test(self, *, final: bool = False) -> Verdict | None:
        cfg = self.config
        if self._samples() < cfg.min_samples:
            return None
        evidence = self._evidence()
        if evidence is None:
            return None
        if self._tau is None:
            if self._per_request and evidence.events < cfg.min_events and not final:
                return None
            # The pooled level: under the null both sides share it, and pooling
            # halves the noise of a level read from the first few requests.
            level = max(abs(evidence.pooled_level), 1e-12)
            if self._per_request:
                level = max(level, 1.0 / max(self._canary.requests + self._baseline.requests, 1))
            self._tau = cfg.effect * level
        theta, var = evidence.theta, evidence.var
        if not (var > 0 and math.isfinite(var)):
            return None
        two_sided = cfg.direction is Direction.EITHER
        log_lr = (log_lr_two_sided if two_sided else log_lr_one_sided)(theta, var, self._tau)
        half = float(cs_half_width(var, self._tau, cfg.alpha))
        self._figures = {
            "canary": evidence.canary_level,
            "baseline": evidence.baseline_level,
            "difference": theta,
            "log_evidence": float(log_lr),
            "log_threshold": self.log_threshold,
            "ci_low": theta - half,
            "ci_high": theta + half,
            "samples": float(self._samples()),
            "baseline_samples": float(self._baseline_samples()),
        }
        if self._bound is not None:
            self._figures["latency_bound"] = self._bound
        if float(log_lr) >= self.log_threshold and (two_sided or theta > 0):
            return Fail((self._reason(evidence),), dict(self._figures))
        worst = abs(theta) + half if two_sided else theta + half
        if cfg.pass_margin is not None and worst < cfg.pass_margin * abs(evidence.baseline_level):
            return Pass(
                f"{cfg.name}: confidently less than {cfg.pass_margin:g}x the baseline level "
                f"worse (difference below {worst:.4g}) after {self._samples()} samples",
                dict(self._figures),
            )
        return None

    def _baseline_samples(self) -> int:
        if self._per_request:
            return self._baseline.requests
        return len(self._baseline.values)

    def _reason(self, ev: _Evidence) -> str:
        cfg = self.config
        if cfg.metric.quantile is not None:
            what = f"share of requests slower than {self._bound or 0.0:g}s"
        else:
            what = {
                MetricKind.ERROR_RATE: "error rate",
                MetricKind.REQUEST_RATE: "request rate",
            }.get(cfg.metric, "value")
        return (
            f"{cfg.name}: canary {what} {ev.canary_level:.4g} vs baseline {ev.baseline_level:.4g}; "
            f"evidence {math.exp(min(self._figures['log_evidence'], 700)):.3g} >= "
            f"1/alpha = {1 / cfg.alpha:g} after {self._samples()} samples"
        )

    def _evidence(self) -> _Evidence | None:
        kind = self.config.metric
        if kind is MetricKind.ERROR_RATE:
            return self._proportions(
                self._canary.errors,
                self._canary.requests,
                self._baseline.errors,
                self._baseline.requests,
            )
        if kind.quantile is not None:
            return self._latency(kind.quantile)
        return self._values()

    def _proportions(self, xc: int, nc: int, xb: int, nb: int) -> _Evidence | None:
        if nc <= 0 or nb <= 0:
            return None
        theta, var = proportion_difference(xc, nc, xb, nb, self.config.tolerance)
        return _Evidence(float(theta), float(var), xc / nc, xb / nb, (xc + xb) / (nc + nb), xc + xb)

    def _latency(self, quantile: float) -> _Evidence | None:
        canary, baseline = self._canary.latency, self._baseline.latency
        if canary is None or baseline is None or canary.total <= 0 or baseline.total <= 0:
            return None
        if canary.bounds != baseline.bounds or not baseline.bounds:
            return None
        if self._bound is None:
            # Fix the bound once about min_events baseline requests are expected above it.
            if baseline.total * (1.0 - quantile) < self.config.min_events:
                return None
            need = quantile * baseline.total
            self._bound = next(
                (b for b, c in zip(baseline.bounds, baseline.counts, strict=True) if c >= need),
                baseline.bounds[-1],
            )
        return self._proportions(
            canary.above(self._bound), canary.total, baseline.above(self._bound), baseline.total
        )

    def _values(self) -> _Evidence | None:
        c = np.asarray(self._canary.values, dtype=np.float64)
        b = np.asarray(self._baseline.values, dtype=np.float64)
        if c.size < 2 or b.size < 2:
            return None
        sign = -1.0 if self.config.direction is Direction.DECREASE else 1.0
        mean_c, mean_b = float(c.mean()), float(b.mean())
        theta = sign * (mean_c - (1.0 + self.config.tolerance * sign) * mean_b)
        var = float(c.var(ddof=1) / c.size + b.var(ddof=1) / b.size)
        if var <= 0:
            # identical constant series: no spread to estimate; one value's worth.
            var = max(abs(mean_b), 1e-12) ** 2 / max(c.size, 1)
        pooled = float(np.concatenate([c, b]).mean())
        return _Evidence(theta, var, mean_c, mean_b, pooled)
