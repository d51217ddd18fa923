"""Per-release metrics scraped from a router's ``/metrics`` (Prometheus text format).

The data plane exports, per release label, a request counter, an error counter
and a latency histogram. Their names are settings (``RouterMetricNames``) so
this adapter does not depend on one router's spelling; the defaults are
kiln's router's. Series of the same release with other labels (status code,
instance, listener) are summed.

The text is parsed here, at the edge, with ``prometheus_client.parser``; what
leaves this module is ``Counters`` per release (cumulative), or ``Missing``.
Quantiles are not computed here: the judges take the histogram delta between
two scrapes and interpolate inside it (``Histogram.quantile``), which gives the
latency of *this* window rather than since the router started.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kiln.core.analysis.observations import Counters, Histogram, Missing, Reading
from kiln.core.spec.models import AnalysisMetric
from kiln.errors import Permanent, Temporary
from kiln.ports.clock import Clock, SystemClock


@dataclass(frozen=True)
class RouterMetricNames:
    """Sample names in the router's exposition, and the label naming the release."""

    requests: str = "kiln_requests_total"
    errors: str = "kiln_request_errors_total"
    duration: str = "kiln_request_duration_seconds"
    release_label: str = "release"


@dataclass
class _Acc:
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    count: float | None = None
    seen_requests: bool = False


@dataclass(frozen=True)
class Exposition:
    releases: dict[str, Counters]
    sample_names: frozenset[str]

    def has(self, name: str) -> bool:
        return name in self.sample_names


def parse_exposition(text: str, *, at: float, names: RouterMetricNames | None = None) -> Exposition:
    """Cumulative counters per release from one exposition text.

    Raises ``Permanent`` when the text is not Prometheus text format. A release
    appears only if its request counter does. A release with no error series
    has ``errors=0``: client libraries create a labelled series on its first
    increment. Whether the error counter is exported at all is a separate
    question, answered by ``Exposition.has``.
    """
    names = names or RouterMetricNames()
    per: dict[str, _Acc] = defaultdict(_Acc)
    seen: set[str] = set()
    bucket_name, count_name = f"{names.duration}_bucket", f"{names.duration}_count"
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                seen.add(s.name)
                release = s.labels.get(names.release_label)
                if release is None or math.isnan(s.value):
                    continue
                acc = per[release]
                if s.name == names.requests:
                    acc.requests += s.value
                    acc.seen_requests = True
                elif s.name == names.errors:
                    acc.errors += s.value
                elif s.name == bucket_name and "le" in s.labels:
                    acc.buckets[float(s.labels["le"])] += s.value
                elif s.name == count_name:
                    acc.count = (acc.count or 0.0) + s.value
    except (ValueError, TypeError, IndexError) as exc:
        raise Permanent(
            f"the router's metrics are not Prometheus text format: {exc}",
            hint="check that the metrics URL points at the router's /metrics endpoint",
        ) from exc
    out: dict[str, Counters] = {}
    for release, acc in per.items():
        if not acc.seen_requests:
            continue
        requests = round(acc.requests)
        errors = min(round(acc.errors), requests)
        out[release] = Counters(at, requests, errors, _histogram(acc))
    return Exposition(out, frozenset(seen))


def _histogram(acc: _Acc) -> Histogram | None:
    if not acc.buckets:
        return None
    finite = sorted(b for b in acc.buckets if math.isfinite(b))
    counts = [round(acc.buckets[b]) for b in finite]
    for i in range(1, len(counts)):  # summed series can be off by rounding; keep monotone
        counts[i] = max(counts[i], counts[i - 1])
    inf = acc.buckets.get(math.inf)
    total = round(inf if inf is not None else acc.count if acc.count is not None else 0)
    total = max(total, counts[-1] if counts else 0)
    return Histogram(tuple(finite), tuple(counts), total)


class RouterMetrics:
    """A ``MetricSource`` over one router's ``/metrics`` URL."""

    def __init__(
        self,
        *,
        url: str,
        names: RouterMetricNames | None = None,
        clock: Clock | None = None,
        client: httpx.Client | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.names = names or RouterMetricNames()
        self._clock = clock or SystemClock()
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def scrape(self) -> Exposition:
        """Every release's cumulative counters, from one GET of the metrics URL."""
        try:
            response = self._client.get(self.url)
        except httpx.TransportError as exc:
            raise Temporary(
                f"cannot reach the router's metrics at {self.url}: {exc.__class__.__name__}",
                delay=1.0,
                hint="is the router running? kiln retries on the next scrape",
            ) from exc
        if response.status_code >= 500:
            raise Temporary(f"router metrics answered HTTP {response.status_code}", delay=1.0)
        if response.status_code != 200:
            raise Permanent(
                f"router metrics at {self.url} answered HTTP {response.status_code}",
                hint="check the metrics URL",
            )
        return parse_exposition(response.text, at=self._clock.monotonic(), names=self.names)

    def read(self, releases: Sequence[str], metric: AnalysisMetric) -> Mapping[str, Reading]:
        exposition = self.scrape()
        counters = exposition.releases
        errors_known = exposition.has(self.names.errors)
        at = self._clock.monotonic()
        out: dict[str, Reading] = {}
        wants_errors = metric.metric is not None and metric.metric.value == "error-rate"
        wants_latency = metric.metric is not None and metric.metric.value.startswith("latency")
        for release in releases:
            found = counters.get(release)
            if found is None:
                out[release] = Missing(at, f"the router exports no requests for release {release}")
            elif wants_errors and not errors_known:
                out[release] = Missing(at, f"the router exports no {self.names.errors} counter")
            elif wants_latency and found.latency is None:
                out[release] = Missing(
                    at, f"the router exports no {self.names.duration} histogram for {release}"
                )
            else:
                out[release] = found
        return out
