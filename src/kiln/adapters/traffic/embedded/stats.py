"""Per-release counters of the embedded router, and their Prometheus exposition.

The hot path only does integer increments on a ``ReleaseStats`` (plus one
``bisect`` for the latency bucket). Turning them into Prometheus text happens
when ``/metrics`` is scraped, through a custom prometheus-client collector, so
the exposition format is the library's, not ours.

Metric names (labels ``environment``, ``release``):
- ``kiln_router_requests_total{code="2xx"}``: answered requests by status class;
- ``kiln_router_connect_failures_total``: upstream attempts that failed to
  connect or were reset before any response byte (each retry counts);
- ``kiln_router_retries_total``: attempts retried on another backend;
- ``kiln_router_request_duration_seconds``: histogram, request head parsed to
  response fully written, as seen by the router;
- ``kiln_router_mirrored_total``: shadow copies sent to this release;
- ``kiln_router_backend_up{backend}``: passive health of each backend;
- ``kiln_router_table_generation``, ``kiln_router_client_connections``,
  ``kiln_router_mirrors_dropped_total``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from kiln.core.traffic.metrics import (
    LATENCY_BOUNDS,
    LatencyHistogram,
    ReleaseMetrics,
)

_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class ReleaseStats:
    __slots__ = (
        "buckets",
        "by_class",
        "connect_failures",
        "latency_sum",
        "mirrored",
        "release",
        "retries",
    )

    def __init__(self, release: str) -> None:
        self.release = release
        self.by_class = [0, 0, 0, 0, 0]
        self.connect_failures = 0
        self.retries = 0
        self.mirrored = 0
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.latency_sum = 0.0

    def observe(self, status: int, seconds: float) -> None:
        index = status // 100 - 1
        if 0 <= index < 5:
            self.by_class[index] += 1
        self.buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.latency_sum += seconds

    def snapshot(self) -> ReleaseMetrics:
        return ReleaseMetrics(
            release=self.release,
            requests=sum(self.by_class),
            responses_5xx=self.by_class[4],
            connect_failures=self.connect_failures,
            latency=LatencyHistogram(LATENCY_BOUNDS, tuple(self.buckets), self.latency_sum),
        )


@dataclass(frozen=True)
class StatsView:
    """What one scrape reads from the data plane."""

    environment: str
    generation: int | None
    releases: list[ReleaseStats]
    backends: list[tuple[str, str, bool]]  # (release, address, up)
    connections: int
    mirrors_dropped: int


class StatsCollector(Collector):
    """Reads the live counters at scrape time; ``source`` returns the current view."""

    def __init__(self, source: Callable[[], StatsView]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        view = self._source()
        environment, generation = view.environment, view.generation
        releases, backends, connections = view.releases, view.backends, view.connections
        labels = ["environment", "release"]
        requests = CounterMetricFamily(
            "kiln_router_requests", "Answered requests by status class.", labels=[*labels, "code"]
        )
        failures = CounterMetricFamily(
            "kiln_router_connect_failures",
            "Upstream attempts that failed to connect or were reset before answering.",
            labels=labels,
        )
        retries = CounterMetricFamily(
            "kiln_router_retries", "Idempotent requests retried on another backend.", labels=labels
        )
        mirrored = CounterMetricFamily(
            "kiln_router_mirrored", "Shadow copies sent to this release.", labels=labels
        )
        latency = HistogramMetricFamily(
            "kiln_router_request_duration_seconds",
            "Time from request head to the end of the response, at the router.",
            labels=labels,
        )
        for st in releases:
            key = [environment, st.release]
            for name, count in zip(_CLASSES, st.by_class, strict=True):
                requests.add_metric([*key, name], count)
            failures.add_metric(key, st.connect_failures)
            retries.add_metric(key, st.retries)
            mirrored.add_metric(key, st.mirrored)
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*LATENCY_BOUNDS, float("inf")), st.buckets, strict=True):
                cumulative += count
                buckets.append((_le(bound), float(cumulative)))
            latency.add_metric(key, buckets, st.latency_sum)
        up = GaugeMetricFamily(
            "kiln_router_backend_up",
            "1 if the backend is in rotation, 0 if ejected by passive health.",
            labels=[*labels, "backend"],
        )
        for release, address, is_up in backends:
            up.add_metric([environment, release, address], 1.0 if is_up else 0.0)
        gen = GaugeMetricFamily(
            "kiln_router_table_generation",
            "Generation of the route table being served (-1: none).",
            labels=["environment"],
        )
        gen.add_metric([environment], -1 if generation is None else generation)
        conns = GaugeMetricFamily(
            "kiln_router_client_connections", "Open client connections.", labels=["environment"]
        )
        conns.add_metric([environment], connections)
        dropped = CounterMetricFamily(
            "kiln_router_mirrors_dropped",
            "Shadow copies not sent because too many were in flight.",
            labels=["environment"],
        )
        dropped.add_metric([environment], view.mirrors_dropped)
        yield from (requests, failures, retries, mirrored, latency, up, gen, conns, dropped)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def registry_for(collector: StatsCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
