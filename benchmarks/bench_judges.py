"""Judges on replayed traffic: time to detect a regression, and false alarms.

Traffic is synthesised per request and replayed, second by second, to three
judges side by side in one run:

* **threshold** -- the Argo/Flagger rule: every interval, the canary's error
  rate over that interval is measured against ``max`` (1.5x the baseline's
  known 1% rate), and the analysis fails when failed checks reach Flagger's
  ``threshold`` (``failureLimit = threshold - 1``). Rows: Flagger's code
  defaults (interval 60s, threshold 1), Flagger's documented example (interval
  1m, threshold 5: the reference the speed-up is measured against), the same
  with the interval scaled down to Flagger's minimum 10 s (the same 50
  requests per second, six times fewer per check), and the fastest rule a grid
  over interval, threshold and max finds at an A/A false-positive rate <= 1%
  (tuned on the very A/A runs it is scored on, and told the true baseline
  rate: the most favourable threshold rule there can be). The time axis is
  simulated: "1m" is one minute of replayed traffic, not of wall time.
* **comparative** -- kiln's Kayenta-style judge: one data point per 10 s window
  (Kayenta's step), a judgement every 60 s (Spinnaker's interval, scaled)
  over all windows so far; a failing judgement ends the canary.
* **sequential** -- kiln's mSPRT judge, asked after every one-second scrape.

Each run is 600 s of traffic at 50 requests/s to the canary and 50 to a fresh
baseline. Per-request outcomes are Bernoulli (errors) and categorical over the
latency buckets (a lognormal latency, median 50 ms, sigma 0.5); a second's
counts are drawn as their sums (binomial / multinomial), which is the same
distribution as drawing each request. Scenarios: 2x error rate (1% -> 2%),
5x error rate, an A/A day on which both releases run at 1.5% errors (a fixed
``max`` does not know), and 2x latency (every request twice as slow, so 2x p95).

Reported per judge: median seconds of traffic to detect (over >= 200 runs),
the share detected within 600 s, the false-positive rate over >= 1000 A/A runs
(canary identical to baseline), and for the sequential judge how soon it
passes an A/A canary early. The sequential judge's vectorised replay is checked
against the real ``SequentialJudge`` on a subset of runs.

    .venv/bin/python -m benchmarks.bench_judges [--quick]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.common import report
from kiln.core.analysis import (
    ComparativeConfig,
    ComparativeJudge,
    ComparedMetric,
    Histogram,
    MetricKind,
    Observation,
    Pending,
    Sample,
    SequentialConfig,
    SequentialJudge,
    ThresholdConfig,
    ThresholdJudge,
)
from kiln.core.analysis.msprt import log_lr_share, log_mixture
from kiln.core.analysis.verdicts import Judge

IntArray = NDArray[np.int64]

RATE = 50  # requests per second to each side
HORIZON = 600  # seconds of traffic per run (ten Flagger intervals)
BASE_ERROR = 0.01
ALPHA = 0.01
MIN_SAMPLES = 50
MIN_EVENTS = 10  # SequentialConfig's default
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
LAT_MEDIAN, LAT_SIGMA = 0.050, 0.5


@dataclass
class Traffic:
    """Per-second counts for many runs: errors [R, T], latency buckets [R, T, B+1]."""

    canary_errors: IntArray
    baseline_errors: IntArray
    rate: int = RATE
    canary_buckets: IntArray | None = None
    baseline_buckets: IntArray | None = None

    @property
    def runs(self) -> int:
        return int(self.canary_errors.shape[0])


def bucket_probs(scale: float) -> NDArray[np.float64]:
    from scipy.stats import lognorm

    cdf = lognorm.cdf(np.asarray(BOUNDS), s=LAT_SIGMA, scale=LAT_MEDIAN * scale)
    edges = np.concatenate([[0.0], cdf, [1.0]])
    return np.diff(edges)


def synthesise(
    rng: np.random.Generator,
    runs: int,
    *,
    error: float,
    latency_scale: float,
    latency: bool,
    baseline_error: float = BASE_ERROR,
    rate: int = RATE,
) -> Traffic:
    shape = (runs, HORIZON)
    traffic = Traffic(
        canary_errors=rng.binomial(rate, error, size=shape),
        baseline_errors=rng.binomial(rate, baseline_error, size=shape),
        rate=rate,
    )
    if latency:
        traffic.canary_buckets = rng.multinomial(rate, bucket_probs(latency_scale), size=shape)
        traffic.baseline_buckets = rng.multinomial(rate, bucket_probs(1.0), size=shape)
    return traffic


# --- feeding real judges ------------------------------------------------------------


def _histogram(buckets: IntArray) -> Histogram:
    cumulative = np.cumsum(buckets[:-1])
    return Histogram(BOUNDS, tuple(int(c) for c in cumulative), int(buckets.sum()))


def _observation(traffic: Traffic, run: int, start: int, end: int) -> Observation:
    requests = traffic.rate * (end - start)

    def side(errors: IntArray, buckets: IntArray | None) -> Sample:
        hist = None if buckets is None else _histogram(buckets[run, start:end].sum(axis=0))
        return Sample(
            float(start), float(end), requests, int(errors[run, start:end].sum()), latency=hist
        )

    return Observation(
        canary=side(traffic.canary_errors, traffic.canary_buckets),
        baseline=side(traffic.baseline_errors, traffic.baseline_buckets),
    )


def replay(judge: Judge, traffic: Traffic, run: int, every: int) -> tuple[float, str]:
    """Feed one run in ``every``-second scrapes; (seconds to a verdict, its kind)."""
    for start in range(0, HORIZON, every):
        judge.observe(_observation(traffic, run, start, start + every))
        status = judge.verdict()
        if not isinstance(status, Pending):
            return float(start + every), type(status).__name__
    return float(HORIZON), type(judge.conclude()).__name__


def run_judges(
    make: Callable[[], Judge], traffic: Traffic, every: int, runs: int | None = None
) -> list[tuple[float, str]]:
    return [replay(make(), traffic, r, every) for r in range(runs or traffic.runs)]


# --- the sequential judge, vectorised over runs ---------------------------------------


def sequential_vectorised(
    traffic: Traffic, metric: MetricKind, quantile: float | None = None
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """(seconds to decision, outcome: 1 fail, 2 early pass, 0 none) for every run.

    The same arithmetic as ``SequentialJudge`` with one-second scrapes: each
    second is one batch; both sides serve the same number of requests, so the
    canary's share ``s`` is 1/2 in every batch and the log likelihood ratio of
    a rate ratio is linear in the cumulative event counts. No decision before
    ``MIN_SAMPLES`` canary requests; the latency bound is fixed from the
    baseline's histogram once ``MIN_EVENTS`` baseline requests are expected
    above it, and the events seen until then count as one first batch.
    """
    runs = np.arange(traffic.runs)
    seconds = np.arange(1, HORIZON + 1)
    n = traffic.rate * seconds[None, :].astype(np.float64)
    ready = np.broadcast_to(n >= MIN_SAMPLES, (traffic.runs, HORIZON))
    if metric is MetricKind.ERROR_RATE:
        xc = np.cumsum(traffic.canary_errors, axis=1).astype(np.float64)
        xb = np.cumsum(traffic.baseline_errors, axis=1).astype(np.float64)
    else:
        assert traffic.canary_buckets is not None and traffic.baseline_buckets is not None
        assert quantile is not None
        bound_ready = np.broadcast_to(n * (1.0 - quantile) >= MIN_EVENTS, ready.shape)
        fixed = np.argmax(bound_ready, axis=1)  # the second the bound is fixed
        cum_b = np.cumsum(traffic.baseline_buckets, axis=1)  # [R, T, B+1]
        at_fixed = np.cumsum(cum_b[runs, fixed, :-1], axis=1)  # cumulative over buckets
        reached = at_fixed >= (quantile * cum_b[runs, fixed, :].sum(axis=1))[:, None]
        index = np.where(reached.any(axis=1), np.argmax(reached, axis=1), len(BOUNDS) - 1)
        cum_c = np.cumsum(traffic.canary_buckets, axis=1)
        above = np.arange(len(BOUNDS) + 1)[None, :] > index[:, None]  # buckets past the bound
        xc = (cum_c * above[:, None, :]).sum(axis=2).astype(np.float64)
        xb = (cum_b * above[:, None, :]).sum(axis=2).astype(np.float64)
        ready = ready & (np.arange(HORIZON)[None, :] >= fixed[:, None])
    config = SequentialConfig("bench", metric, alpha=ALPHA)
    components = np.stack([log_lr_share(xc, xb, 0.5, r) for r in config.ratios])
    log_lr = log_mixture(components, [w for _, w in config.prior])
    assert config.pass_margin is not None
    log_pass = log_lr_share(xc, xb, 0.5, 1.0, 1.0 + config.pass_margin)
    fail = log_lr >= math.log(1 / ALPHA)
    early_pass = log_pass >= math.log(1 / ALPHA)
    decided = (fail | early_pass) & ready
    any_decided = decided.any(axis=1)
    at = np.argmax(decided, axis=1)
    outcome = np.where(any_decided, np.where(fail[runs, at], 1, 2), 0)
    when = np.where(any_decided, seconds[at], HORIZON).astype(np.float64)
    return when, outcome


def cross_check(traffic: Traffic, metric: MetricKind, runs: int, quantile: float | None) -> int:
    """How many of the first ``runs`` runs the real judge decides differently."""
    when, outcome = sequential_vectorised(traffic, metric, quantile)
    names = {0: "Pass", 1: "Fail", 2: "Pass"}
    mismatches = 0
    for r in range(runs):
        judge = SequentialJudge(SequentialConfig("bench", metric, alpha=ALPHA))
        t, kind = replay(judge, traffic, r, 1)
        if kind != names[int(outcome[r])] or (outcome[r] != 0 and t != when[r]):
            mismatches += 1
    return mismatches


# --- the three judges' configurations ---------------------------------------------------


def threshold(interval: int, checks: int, multiple: float = 1.5) -> Callable[[], Judge]:
    """Flagger's rule: fail when ``checks`` interval checks had a rate above the max."""
    return lambda: ThresholdJudge(
        ThresholdConfig(
            "error-rate",
            MetricKind.ERROR_RATE,
            max=multiple * BASE_ERROR,
            interval=float(interval),
            failure_limit=checks - 1,
            min_samples=MIN_SAMPLES,
        )
    )


def threshold_vectorised(
    traffic: Traffic, interval: int, checks: int, multiple: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """(seconds to failure, failed) per run for the threshold rule, all runs at once."""
    windows = HORIZON // interval
    per = traffic.canary_errors[:, : windows * interval].reshape(traffic.runs, windows, interval)
    rate = per.sum(axis=2) / (traffic.rate * interval)
    failures = np.cumsum(rate > multiple * BASE_ERROR, axis=1)
    reached = failures >= checks
    failed = reached.any(axis=1)
    when = np.where(failed, (np.argmax(reached, axis=1) + 1) * interval, HORIZON)
    return when.astype(np.float64), failed


def best_threshold(bad: Traffic, same: Traffic) -> tuple[int, int, float, float, float]:
    """The fastest threshold rule (median detection) whose A/A false-positive rate is <= alpha.

    A grid over Flagger's allowed intervals (>= 10 s), thresholds and max
    multiples, chosen on the same A/A runs it is reported on -- an optimistic
    tuning in the threshold rule's favour.
    """
    best: tuple[int, int, float, float, float] | None = None
    for interval in (10, 20, 30, 60):
        for checks in (1, 2, 3, 5):
            for multiple in (1.5, 1.75, 2.0, 2.5):
                _, aa_failed = threshold_vectorised(same, interval, checks, multiple)
                fpr = float(aa_failed.mean())
                if fpr > ALPHA:
                    continue
                when, failed = threshold_vectorised(bad, interval, checks, multiple)
                median = float(np.median(np.where(failed, when, math.inf)))
                if best is None or median < best[3]:
                    best = (interval, checks, multiple, median, fpr)
    assert best is not None
    return best


def comparative(metric: MetricKind) -> Callable[[], Judge]:
    return lambda: ComparativeJudge(
        ComparativeConfig(
            metric.value,
            (ComparedMetric(metric.value, metric),),
            interval=10.0,
            judge_every=6,
            confidence=1 - ALPHA,
            min_samples=MIN_SAMPLES,
        )
    )


NAMES = {0: "Pass", 1: "Fail", 2: "Pass"}


def sequential_rows(
    traffic: Traffic, metric: MetricKind, q: float | None
) -> list[tuple[float, str]]:
    when, outcome = sequential_vectorised(traffic, metric, q)
    return [
        (float(t) if o else float(HORIZON), NAMES[int(o)])
        for t, o in zip(when, outcome, strict=True)
    ]


def summarise(
    scenario: str, judge: str, config: str, detect: Sequence[tuple[float, str]], aa: Sequence[Any]
) -> dict[str, Any]:
    times = np.array([t if k == "Fail" else math.inf for t, k in detect])
    detected = float(np.isfinite(times).mean()) if detect else math.nan
    median = float(np.median(times)) if detect else math.nan
    false_alarms = float(np.mean([k == "Fail" for _, k in aa])) if aa else math.nan
    aa_pass = [t for t, k in aa if k == "Pass" and t < HORIZON]
    return {
        "scenario": scenario,
        "judge": judge,
        "config": config,
        "detect_median_s": median,
        "detected": detected,
        "fpr": false_alarms,
        "aa_early_pass_median_s": float(np.median(aa_pass)) if aa_pass else math.nan,
        "runs": len(detect),
        "aa_runs": len(aa),
    }


THRESHOLDS = (
    ("Flagger code defaults: interval 60s, threshold 1", 60, 1),
    ("Flagger docs example: interval 60s, threshold 5", 60, 5),
    ("Flagger's minimum interval 10s, threshold 5", 10, 5),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke-sized run")
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args(argv)
    detect_runs, aa_runs, check_runs = (40, 100, 5) if args.quick else (200, 1000, 30)
    rng = np.random.default_rng(args.seed)
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    mismatches = 0

    # --- error rate 1% -> 2% (and 5%) -------------------------------------------------
    bad = synthesise(rng, detect_runs, error=2 * BASE_ERROR, latency_scale=1.0, latency=False)
    same = synthesise(rng, aa_runs, error=BASE_ERROR, latency_scale=1.0, latency=False)
    awful = synthesise(rng, detect_runs, error=5 * BASE_ERROR, latency_scale=1.0, latency=False)
    for label, every, checks in THRESHOLDS:
        detect = run_judges(threshold(every, checks), bad, every)
        rows.append(
            summarise(
                "error 2x",
                "threshold",
                label,
                detect,
                run_judges(threshold(every, checks), same, every),
            )
        )
        when, failed = threshold_vectorised(bad, every, checks, 1.5)
        mismatches += int(
            sum(
                (k == "Fail") != bool(f) or (k == "Fail" and t != w)
                for (t, k), w, f in zip(detect, when, failed, strict=True)
            )
        )
    interval, checks, multiple, median, fpr = best_threshold(bad, same)
    rows.append(
        {
            "scenario": "error 2x",
            "judge": "threshold",
            "config": f"best at FPR<=1%: interval {interval}s, threshold {checks}, "
            f"max {multiple:g}x baseline",
            "detect_median_s": median,
            "detected": float(threshold_vectorised(bad, interval, checks, multiple)[1].mean()),
            "fpr": fpr,
            "aa_early_pass_median_s": math.nan,
            "runs": bad.runs,
            "aa_runs": same.runs,
        }
    )
    rows.append(
        summarise(
            "error 2x",
            "comparative",
            "step 10s, judged every 60s, 99%",
            run_judges(comparative(MetricKind.ERROR_RATE), bad, 10),
            run_judges(comparative(MetricKind.ERROR_RATE), same, 10),
        )
    )
    seq_aa = sequential_rows(same, MetricKind.ERROR_RATE, None)
    rows.append(
        summarise(
            "error 2x",
            "sequential",
            f"mSPRT alpha {ALPHA}, every 1s",
            sequential_rows(bad, MetricKind.ERROR_RATE, None),
            seq_aa,
        )
    )
    mismatches += cross_check(bad, MetricKind.ERROR_RATE, check_runs, None)
    mismatches += cross_check(same, MetricKind.ERROR_RATE, check_runs, None)

    # a larger regression: fixed-interval rules cannot be faster than their interval
    aa_threshold = rows[1]
    when, failed = threshold_vectorised(awful, 60, 5, 1.5)
    rows.append(
        {
            **aa_threshold,
            "scenario": "error 5x",
            "detect_median_s": float(np.median(np.where(failed, when, math.inf))),
            "detected": float(failed.mean()),
            "runs": awful.runs,
        }
    )
    when, failed = threshold_vectorised(awful, interval, checks, multiple)
    rows.append(
        {
            **rows[3],
            "scenario": "error 5x",
            "detect_median_s": float(np.median(np.where(failed, when, math.inf))),
            "detected": float(failed.mean()),
            "runs": awful.runs,
        }
    )
    rows.append(
        summarise(
            "error 5x",
            "comparative",
            "step 10s, judged every 60s, 99%",
            run_judges(comparative(MetricKind.ERROR_RATE), awful, 10),
            [],
        )
        | {"fpr": rows[4]["fpr"], "aa_runs": rows[4]["aa_runs"]}
    )
    rows.append(
        summarise(
            "error 5x",
            "sequential",
            f"mSPRT alpha {ALPHA}, every 1s",
            sequential_rows(awful, MetricKind.ERROR_RATE, None),
            seq_aa,
        )
    )

    # an A/A day when both releases run at 1.5% errors: a threshold tuned for a 1%
    # baseline alarms; judges that read the fresh baseline do not.
    drift = synthesise(
        rng,
        aa_runs,
        error=1.5 * BASE_ERROR,
        latency_scale=1.0,
        latency=False,
        baseline_error=1.5 * BASE_ERROR,
    )
    for label, rule in (
        (THRESHOLDS[1][0], (60, 5, 1.5)),
        (rows[3]["config"], (interval, checks, multiple)),
    ):
        _, failed = threshold_vectorised(drift, *rule)
        rows.append(
            {
                "scenario": "A/A at 1.5% errors",
                "judge": "threshold",
                "config": label,
                "fpr": float(failed.mean()),
                "aa_runs": drift.runs,
            }
        )
    rows.append(
        summarise(
            "A/A at 1.5% errors",
            "sequential",
            f"mSPRT alpha {ALPHA}, every 1s",
            [],
            sequential_rows(drift, MetricKind.ERROR_RATE, None),
        )
    )

    # the sequential judge's false-positive rate away from 50 req/s and 1% errors,
    # where the normal approximation it rests on is weakest
    for rate, level in ((5, 0.01), (5, 0.1), (500, 0.001), (500, 0.1)):
        other = synthesise(
            rng,
            aa_runs,
            error=level,
            latency_scale=1.0,
            latency=False,
            baseline_error=level,
            rate=rate,
        )
        rows.append(
            summarise(
                f"A/A at {rate} req/s, {level:.1%} errors",
                "sequential",
                f"mSPRT alpha {ALPHA}, every 1s",
                [],
                sequential_rows(other, MetricKind.ERROR_RATE, None),
            )
        )

    # --- latency: every request 2x slower (2x p95) ------------------------------------
    slow = synthesise(rng, detect_runs, error=BASE_ERROR, latency_scale=2.0, latency=True)
    same_lat = synthesise(rng, aa_runs, error=BASE_ERROR, latency_scale=1.0, latency=True)
    rows.append(
        summarise(
            "latency 2x p95",
            "comparative",
            "p95 per 10s step, judged every 60s",
            run_judges(comparative(MetricKind.LATENCY_P95), slow, 10),
            run_judges(comparative(MetricKind.LATENCY_P95), same_lat, 10),
        )
    )
    rows.append(
        summarise(
            "latency 2x p95",
            "sequential",
            "mSPRT on share above baseline p95 bucket",
            sequential_rows(slow, MetricKind.LATENCY_P95, 0.95),
            sequential_rows(same_lat, MetricKind.LATENCY_P95, 0.95),
        )
    )
    mismatches += cross_check(slow, MetricKind.LATENCY_P95, check_runs, 0.95)

    for row in rows:
        reference = next(
            (
                r["detect_median_s"]
                for r in rows
                if r["scenario"] == row["scenario"]
                and r["config"] == THRESHOLDS[1][0]
                and "detect_median_s" in r
            ),
            None,
        )
        if reference is not None and "detect_median_s" in row:
            row["speedup_vs_flagger_docs"] = reference / row["detect_median_s"]
    meta = {
        "rate_per_side_rps": RATE,
        "horizon_s": HORIZON,
        "baseline_error_rate": BASE_ERROR,
        "alpha": ALPHA,
        "min_samples": MIN_SAMPLES,
        "min_events": MIN_EVENTS,
        "seed": args.seed,
        "quick": args.quick,
        "cross_check_runs": 3 * check_runs + len(THRESHOLDS) * detect_runs,
        "cross_check_mismatches": mismatches,
        "wall_s": time.perf_counter() - began,
    }
    report("judges", rows, meta)
    seq = next(r for r in rows if r["judge"] == "sequential")
    best = rows[3]
    print(
        f"sequential (error 2x): {seq['detect_median_s']:.0f}s median, FPR {seq['fpr']:.4f}; "
        f"{seq['speedup_vs_flagger_docs']:.2f}x faster than Flagger's documented rule "
        f"(target >= 5x at FPR <= 0.01); the best threshold rule at FPR <= 1% takes "
        f"{best['detect_median_s']:.0f}s. Cross-check mismatches "
        f"{mismatches}/{meta['cross_check_runs']}; wall {meta['wall_s']:.1f}s"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
