"""What the judges see: readings from a metric source, and the windows between them.

A metric source (``kiln.ports.metrics``) returns one ``Reading`` per release each
time it is asked:

* ``Counters``: cumulative request and error counters and a cumulative latency
  histogram, as the router exports them. A judge never looks at a cumulative
  value; ``window(previous, current)`` turns two readings into the ``Sample`` of
  what happened in between (a delta), so an old release's long history never
  leaks into the comparison.
* ``Gauge``: an instant value computed by the source itself (a PromQL query),
  already a rate over its own range; its window is the value.
* ``Missing``: the source had nothing for that release (no series, NaN, or the
  source could not be reached when ``error`` is true). Missing is never zero:
  judges turn it into "inconclusive", never into "pass".

An ``Observation`` pairs the canary's sample with the baseline's for the same
window. Everything here is pure data with no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kiln.core.spec.models import RouterMetric


class MetricKind(StrEnum):
    """The figure a judge extracts from a sample (router metrics, or a query value)."""

    ERROR_RATE = "error-rate"
    LATENCY_P50 = "latency-p50"
    LATENCY_P95 = "latency-p95"
    LATENCY_P99 = "latency-p99"
    REQUEST_RATE = "request-rate"
    QUERY = "query"

    @classmethod
    def of(cls, metric: RouterMetric | None) -> MetricKind:
        return cls.QUERY if metric is None else cls(metric.value)

    @property
    def quantile(self) -> float | None:
        return _QUANTILES.get(self)

    @property
    def counts_requests(self) -> bool:
        """True when a sample's weight is its request count (router metrics)."""
        return self is not MetricKind.QUERY


class Direction(StrEnum):
    """Which way a change in a metric is harmful."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


_QUANTILES = {
    MetricKind.LATENCY_P50: 0.50,
    MetricKind.LATENCY_P95: 0.95,
    MetricKind.LATENCY_P99: 0.99,
}


@dataclass(frozen=True)
class Histogram:
    """A Prometheus-style histogram: finite upper bounds and cumulative counts.

    ``counts[i]`` is the number of observations ``<= bounds[i]``; ``total`` counts
    every observation including those above the last bound (the ``+Inf`` bucket).
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: int

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.counts):
            raise ValueError("a histogram needs one cumulative count per bound")
        if any(b <= a for a, b in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError("histogram bounds must increase")
        if any(b < a for a, b in zip(self.counts, self.counts[1:], strict=False)):
            raise ValueError("cumulative histogram counts must not decrease")
        if self.counts and self.total < self.counts[-1]:
            raise ValueError("histogram total is below its last bucket")

    @classmethod
    def empty(cls, bounds: Sequence[float]) -> Histogram:
        return cls(tuple(bounds), tuple(0 for _ in bounds), 0)

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations made after ``earlier`` (same buckets)."""
        if earlier.bounds != self.bounds:
            raise ValueError("histograms with different buckets cannot be subtracted")
        counts = tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True))
        return Histogram(self.bounds, counts, self.total - earlier.total)

    def plus(self, other: Histogram) -> Histogram:
        if other.bounds != self.bounds:
            raise ValueError("histograms with different buckets cannot be added")
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return Histogram(self.bounds, counts, self.total + other.total)

    def above(self, bound: float) -> int:
        """Observations greater than ``bound``, which must be one of the bounds."""
        return self.total - self.counts[self.bounds.index(bound)]

    def quantile(self, q: float) -> float | None:
        """The q-quantile by linear interpolation inside its bucket.

        Same rule as PromQL ``histogram_quantile``: the first bucket starts at 0,
        and a quantile that falls in the ``+Inf`` bucket is reported as the
        largest finite bound. ``None`` when the histogram is empty.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError("a quantile is between 0 and 1")
        if self.total <= 0:
            return None
        rank = q * self.total
        lower_bound, lower_count = 0.0, 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            if count >= rank and count > lower_count:
                share = (rank - lower_count) / (count - lower_count)
                return lower_bound + (bound - lower_bound) * share
            lower_bound, lower_count = bound, count
        return self.bounds[-1] if self.bounds else None


# --- readings (what a source returns) ---------------------------------------------------


@dataclass(frozen=True)
class Counters:
    """Cumulative per-release counters at time ``at`` (seconds, source clock)."""

    at: float
    requests: int
    errors: int
    latency: Histogram | None = None

    def __post_init__(self) -> None:
        if self.requests < 0 or self.errors < 0 or self.errors > self.requests:
            raise ValueError("counters need 0 <= errors <= requests")


@dataclass(frozen=True)
class Gauge:
    """An instant value computed by the source (for example a PromQL query)."""

    at: float
    value: float


@dataclass(frozen=True)
class Missing:
    """No value for this release; ``error`` when the source itself failed."""

    at: float
    reason: str
    error: bool = False


Reading = Counters | Gauge | Missing


# --- samples (what happened in one window) ----------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What one release did between ``start`` and ``end``."""

    start: float
    end: float
    requests: int = 0
    errors: int = 0
    latency: Histogram | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("a sample ends after it starts")
        if self.requests < 0 or self.errors < 0 or self.errors > self.requests:
            raise ValueError("a sample needs 0 <= errors <= requests")

    def plus(self, later: Sample) -> Sample:
        """This window and the one after it, as one window.

        Counts and histograms add up; a gauge keeps its latest value, the way a
        query evaluated at the end of the longer window would.
        """
        if self.latency is None:
            latency = later.latency
        elif later.latency is None:
            latency = self.latency
        else:
            latency = self.latency.plus(later.latency)
        return Sample(
            start=min(self.start, later.start),
            end=max(self.end, later.end),
            requests=self.requests + later.requests,
            errors=self.errors + later.errors,
            latency=latency,
            value=later.value if later.value is not None else self.value,
        )


def window(previous: Reading | None, current: Reading) -> Sample | Missing:
    """The sample between two readings of one release.

    A first reading (no ``previous``) starts the clock and carries no traffic:
    returning its cumulative counters would judge the release's whole history.
    A counter that went backwards means the exporter restarted; as in PromQL's
    ``increase``, the current value is then taken as the increase.
    """
    if isinstance(current, Missing):
        return current
    if isinstance(current, Gauge):
        if math.isnan(current.value) or math.isinf(current.value):
            return Missing(current.at, "the query returned a value that is not a number")
        start = previous.at if previous is not None else current.at
        return Sample(start=min(start, current.at), end=current.at, value=current.value)
    if not isinstance(previous, Counters):
        return Sample(start=current.at, end=current.at, latency=_empty_like(current.latency))
    if current.requests < previous.requests or current.errors < previous.errors:
        return Sample(
            start=previous.at,
            end=max(previous.at, current.at),
            requests=current.requests,
            errors=current.errors,
            latency=current.latency,
        )
    latency: Histogram | None = None
    if current.latency is not None:
        if previous.latency is not None and previous.latency.bounds == current.latency.bounds:
            latency = current.latency.minus(previous.latency)
            if latency.total < 0 or any(c < 0 for c in latency.counts):
                latency = current.latency
        else:
            latency = current.latency
    return Sample(
        start=previous.at,
        end=max(previous.at, current.at),
        requests=current.requests - previous.requests,
        errors=current.errors - previous.errors,
        latency=latency,
    )


def _empty_like(histogram: Histogram | None) -> Histogram | None:
    return None if histogram is None else Histogram.empty(histogram.bounds)


@dataclass(frozen=True)
class Observation:
    """The canary's and the baseline's samples over the same window.

    ``baseline`` is ``None`` when the analysis has no baseline (a threshold judge
    needs none); a ``Missing`` baseline is different: it was expected and absent.
    """

    canary: Sample | Missing
    baseline: Sample | Missing | None = None

    @property
    def end(self) -> float:
        if isinstance(self.canary, Missing):
            return self.canary.at
        return self.canary.end


def measure(kind: MetricKind, sample: Sample) -> float | None:
    """The figure ``kind`` over one sample, or ``None`` when it is undefined.

    An error rate over zero requests, a quantile of an empty histogram, or a
    query with no value is undefined, which judges treat as missing data.
    """
    if kind is MetricKind.ERROR_RATE:
        return sample.errors / sample.requests if sample.requests > 0 else None
    if kind is MetricKind.REQUEST_RATE:
        span = sample.end - sample.start
        return sample.requests / span if span > 0 else None
    if kind is MetricKind.QUERY:
        return sample.value
    quantile = kind.quantile
    if quantile is None or sample.latency is None:
        return None
    return sample.latency.quantile(quantile)


def weight(kind: MetricKind, sample: Sample) -> int:
    """How many observations a sample is worth toward ``min_samples``.

    Router metrics count requests; a query value counts as one observation,
    because the source does not say how many events it summarised.
    """
    if kind.counts_requests:
        return sample.requests
    return 1 if sample.value is not None else 0


def observe(
    previous: Mapping[str, Reading],
    current: Mapping[str, Reading],
    *,
    canary: str,
    baseline: str | None = None,
) -> Observation:
    """The observation between two rounds of readings of the same releases.

    ``previous`` may be empty (the first round): the result then carries no
    traffic and only starts the clock.
    """

    def side(release: str) -> Sample | Missing:
        now = current.get(release)
        if now is None:
            at = max((_at(r) for r in current.values()), default=0.0)
            return Missing(at, f"the source returned nothing for release {release}")
        return window(previous.get(release), now)

    return Observation(
        canary=side(canary),
        baseline=None if baseline is None else side(baseline),
    )


def _at(reading: Reading) -> float:
    return reading.at


# --- readings as JSON (the analysis journal a controller resumes from) --------------------


def encode_reading(reading: Reading) -> dict[str, object]:
    """A reading as plain JSON data; ``decode_reading`` gives back an equal value."""
    if isinstance(reading, Missing):
        return {
            "kind": "missing",
            "at": reading.at,
            "reason": reading.reason,
            "error": reading.error,
        }
    if isinstance(reading, Gauge):
        return {"kind": "gauge", "at": reading.at, "value": reading.value}
    latency = reading.latency
    return {
        "kind": "counters",
        "at": reading.at,
        "requests": reading.requests,
        "errors": reading.errors,
        "latency": None
        if latency is None
        else {
            "bounds": list(latency.bounds),
            "counts": list(latency.counts),
            "total": latency.total,
        },
    }


def decode_reading(data: Mapping[str, object]) -> Reading:
    """The inverse of ``encode_reading``; ``ValueError`` on anything else."""
    kind, at = data.get("kind"), data.get("at")
    if not isinstance(at, int | float):
        raise ValueError("a reading needs a numeric 'at'")
    if kind == "missing":
        return Missing(float(at), str(data.get("reason", "")), bool(data.get("error", False)))
    if kind == "gauge":
        value = data.get("value")
        if not isinstance(value, int | float):
            raise ValueError("a gauge needs a numeric value")
        return Gauge(float(at), float(value))
    if kind != "counters":
        raise ValueError(f"unknown reading kind {kind!r}")
    requests, errors, latency = data.get("requests"), data.get("errors"), data.get("latency")
    if not isinstance(requests, int) or not isinstance(errors, int):
        raise ValueError("counters need integer requests and errors")
    histogram = None
    if isinstance(latency, Mapping):
        bounds, counts, total = latency.get("bounds"), latency.get("counts"), latency.get("total")
        if (
            not isinstance(bounds, list)
            or not isinstance(counts, list)
            or not isinstance(total, int)
        ):
            raise ValueError("a histogram needs bounds, counts and a total")
        histogram = Histogram(tuple(float(b) for b in bounds), tuple(int(c) for c in counts), total)
    return Counters(float(at), requests, errors, histogram)
