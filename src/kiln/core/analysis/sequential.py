"""The sequential, anytime-valid judge: stop as soon as the evidence is enough.

It may be asked after every scrape without inflating its false-alarm rate,
because its evidence is a mixture likelihood ratio (``kiln.core.analysis.msprt``)
and Ville's inequality bounds the chance that it *ever* crosses ``1/alpha``
when the canary is no worse than the baseline. So:

* **Fail** the moment the evidence that the canary is worse crosses ``1/alpha``
  (``alpha`` is the metric's ``falsePositiveRate``);
* **Pass early** the moment the evidence that the canary is *not*
  ``1 + pass_margin`` times worse crosses ``1/alpha`` -- a false early pass on
  a real regression of that size has probability at most ``alpha`` as well;
* at the end of the step, **Pass** if nothing was found over at least
  ``min_samples`` canary requests, otherwise **Inconclusive**.

What it tests, per metric:

* ``error-rate``: the canary's share of the errors of each batch (the traffic
  between two scrapes) given both sides' request counts -- exact under the
  null, with a mixture over rate ratios centred on the regression the test is
  tuned for (``effect``; ``kiln.core.analysis.msprt``, "counts").
* ``latency-pNN``: the same test on "slower than ``b``" events, where ``b`` is
  the smallest histogram bound at or above the baseline's NN-th percentile
  once about ``min_events`` baseline requests are expected above it; a 2x
  slower canary sends far more than ``1 - NN%`` of its requests above ``b``.
  This needs only bucket counts, which is all a router's histogram has.
* ``request-rate`` and query values: the mean of per-window values, with the
  variance estimated from their spread (a plug-in normal mSPRT; approximate with
  few windows, so ``min_samples`` counts windows here). Its mixture scale
  ``tau`` is ``effect`` times the level, fixed once at the first decision point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kiln.core.analysis.msprt import (
    cs_half_width,
    log_lr_one_sided,
    log_lr_share,
    log_lr_two_sided,
    log_mixture,
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
    # Baseline requests expected above the latency bound before it is fixed:
    # ten read the baseline's percentile bucket where a first second's one or
    # two slow requests would not.
    min_events: int = 10
    # The mixture over rate ratios for counts: (multiple of ``effect``, weight).
    # Most of the weight sits on the smallest regression worth catching, the
    # rest on one three times as large so that a gross regression is not slowed
    # down. A mixture concentrated where the alternative is expected costs far
    # less evidence than a broad one (log 1/0.8 = 0.22 nats here, against the
    # half-normal's 1.5 nats at one minute of 50 req/s); Ville's bound holds
    # for any weights that sum to one.
    prior: tuple[tuple[float, float], ...] = ((1.0, 0.8), (3.0, 0.2))

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValueError("alpha is between 0 and 0.5")
        if self.min_samples < 1 or self.effect <= 0 or self.tolerance < 0:
            raise ValueError("min_samples >= 1, effect > 0 and tolerance >= 0")
        per_request = self.metric is MetricKind.ERROR_RATE or self.metric.quantile is not None
        if per_request and self.direction is not Direction.INCREASE:
            raise ValueError("error rates and latencies are judged for increases only")
        if not self.prior or any(m <= 0 or w <= 0 for m, w in self.prior):
            raise ValueError("the prior needs positive multiples and weights")
        if not math.isclose(sum(w for _, w in self.prior), 1.0):
            raise ValueError("the prior's weights add up to 1")

    @property
    def ratios(self) -> tuple[float, ...]:
        """The rate ratios the mixture puts weight on (relative to ``1 + tolerance``)."""
        null = 1.0 + self.tolerance
        return tuple(null * (1.0 + m * self.effect) for m, _ in self.prior)


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
        # counts (error rates, latencies): the running log likelihood ratio of
        # each mixture component, and of "no worse" against "1 + pass_margin x".
        self._log_fail = np.zeros(len(config.prior))
        self._log_pass = 0.0
        self._events = (0, 0)  # canary, baseline events fed to the test so far

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
        if self._per_request:
            self._count(canary, baseline)
            self._decided = self._test_counts()
        else:
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
            # Query values: too few windows ever to fix the mixture scale, so
            # one last look with what there is.
            final = None if self._per_request or self._tau is not None else self._test(final=True)
            if final is not None:
                verdict = final
            elif not self._comparable():
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

    def _comparable(self) -> bool:
        if not self._per_request:
            return self._tau is not None or bool(self._figures)
        if self.config.metric.quantile is not None:
            return self._bound is not None
        return self._baseline.requests > 0

    def _progress(self) -> str:
        have, need = self._samples(), self.config.min_samples
        if have < need:
            return f"{have}/{need} samples before the first decision"
        evidence = self._figures.get("log_evidence", float("-inf"))
        return f"evidence {evidence:.2f} of {self.log_threshold:.2f} needed to fail"

    # --- counts: the canary's share of events, batch by batch -------------------------

    def _count(self, canary: Sample, baseline: Sample) -> None:
        """Add one batch's evidence (the events of ``canary`` and ``baseline``)."""
        quantile = self.config.metric.quantile
        if quantile is None:
            self._feed(canary.errors, canary.requests, baseline.errors, baseline.requests)
            return
        if self._bound is None:
            whole = self._baseline.latency
            mine = self._canary.latency
            bound = (
                None if whole is None or mine is None else self._fix_bound(whole, mine, quantile)
            )
            if bound is None or whole is None or mine is None:
                return
            # Everything seen before the bound was known is one first batch.
            self._feed(mine.above(bound), mine.total, whole.above(bound), whole.total)
            return
        c, b = canary.latency, baseline.latency
        if c is None or b is None or c.bounds != b.bounds or self._bound not in c.bounds:
            return
        self._feed(c.above(self._bound), c.total, b.above(self._bound), b.total)

    def _fix_bound(self, baseline: Histogram, canary: Histogram, quantile: float) -> float | None:
        if canary.bounds != baseline.bounds or not baseline.bounds or baseline.total <= 0:
            return None
        if baseline.total * (1.0 - quantile) < self.config.min_events:
            return None
        need = quantile * baseline.total
        self._bound = next(
            (b for b, c in zip(baseline.bounds, baseline.counts, strict=True) if c >= need),
            baseline.bounds[-1],
        )
        return self._bound

    def _feed(self, xc: int, nc: int, xb: int, nb: int) -> None:
        if nc <= 0 or nb <= 0 or xc + xb <= 0:
            return  # no events, or one side idle: the batch says nothing
        cfg = self.config
        share = nc / (nc + nb)
        null = 1.0 + cfg.tolerance
        self._log_fail += np.asarray(log_lr_share(xc, xb, share, cfg.ratios, null), dtype=float)
        if cfg.pass_margin is not None:
            worse = null * (1.0 + cfg.pass_margin)
            self._log_pass += float(log_lr_share(xc, xb, share, null, worse))
        self._events = (self._events[0] + xc, self._events[1] + xb)

    def _test_counts(self) -> Verdict | None:
        cfg = self.config
        canary, baseline = self._levels()
        if canary is None or baseline is None:
            return None
        weights = [w for _, w in cfg.prior]
        log_lr = float(log_mixture(self._log_fail, weights))
        self._figures = {
            "canary": canary,
            "baseline": baseline,
            "difference": canary - baseline,
            "log_evidence": log_lr,
            "log_threshold": self.log_threshold,
            "log_pass_evidence": self._log_pass,
            "canary_events": float(self._events[0]),
            "baseline_events": float(self._events[1]),
            "samples": float(self._samples()),
            "baseline_samples": float(self._baseline_samples()),
        }
        if self._bound is not None:
            self._figures["latency_bound"] = self._bound
        if self._samples() < cfg.min_samples:
            return None  # never a verdict, either way, on too few requests
        if log_lr >= self.log_threshold:
            return Fail((self._reason(canary, baseline),), dict(self._figures))
        if cfg.pass_margin is not None and self._log_pass >= self.log_threshold:
            return Pass(
                f"{cfg.name}: confidently less than {1 + cfg.pass_margin:g}x the baseline "
                f"(evidence {math.exp(min(self._log_pass, 700)):.3g} >= 1/alpha) after "
                f"{self._samples()} samples",
                dict(self._figures),
            )
        return None

    def _levels(self) -> tuple[float | None, float | None]:
        """The canary's and baseline's event rates over everything fed so far."""
        quantile = self.config.metric.quantile
        if quantile is None:
            c, b = self._canary, self._baseline
            if c.requests <= 0 or b.requests <= 0:
                return None, None
            return c.errors / c.requests, b.errors / b.requests
        hc, hb = self._canary.latency, self._baseline.latency
        if self._bound is None or hc is None or hb is None or hc.total <= 0 or hb.total <= 0:
            return None, None
        return hc.above(self._bound) / hc.total, hb.above(self._bound) / hb.total

    def _reason(self, canary: float, baseline: float) -> str:
        cfg = self.config
        if cfg.metric.quantile is not None:
            what = f"share of requests slower than {self._bound or 0.0:g}s"
        else:
            what = {
                MetricKind.ERROR_RATE: "error rate",
                MetricKind.REQUEST_RATE: "request rate",
            }.get(cfg.metric, "value")
        return (
            f"{cfg.name}: canary {what} {canary:.4g} vs baseline {baseline:.4g}; "
            f"evidence {math.exp(min(self._figures['log_evidence'], 700)):.3g} >= "
            f"1/alpha = {1 / cfg.alpha:g} after {self._samples()} samples"
        )

    # --- values (request rates, queries): the plug-in normal mSPRT ----------------------

    def _test(self, *, final: bool = False) -> Verdict | None:
        cfg = self.config
        if self._samples() < cfg.min_samples:
            return None
        evidence = self._values()
        if evidence is None:
            return None
        if self._tau is None:
            self._tau = cfg.effect * max(abs(evidence.pooled_level), 1e-12)
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
        if float(log_lr) >= self.log_threshold and (two_sided or theta > 0):
            return Fail(
                (self._reason(evidence.canary_level, evidence.baseline_level),),
                dict(self._figures),
            )
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
