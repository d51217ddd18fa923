"""The router source against a live HTTP server serving generated exposition text.

The server is a stdlib HTTP server whose /metrics is rendered by prometheus_client
from real Counter and Histogram objects, the way a router exports them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client import Histogram as PromHistogram
from prometheus_client.exposition import generate_latest

from kiln.adapters.metrics.router import RouterMetrics
from kiln.core.analysis import (
    Counters,
    Fail,
    MetricKind,
    Pending,
    Sample,
    SequentialConfig,
    SequentialJudge,
)
from kiln.core.analysis.observations import observe
from kiln.core.spec.models import AnalysisMetric
from kiln.errors import Temporary

pytestmark = pytest.mark.integration

ERROR_RATE = AnalysisMetric.model_validate({"name": "e", "metric": "error-rate"}, strict=False)
P95 = AnalysisMetric.model_validate({"name": "p", "metric": "latency-p95"}, strict=False)


@dataclass
class Router:
    url: str
    requests: Counter
    errors: Counter
    latency: PromHistogram

    def serve(self, release: str, n: int, errors: int, latency: float) -> None:
        self.requests.labels(release=release, code="200").inc(n - errors)
        self.requests.labels(release=release, code="500").inc(errors)
        if errors:
            self.errors.labels(release=release).inc(errors)
        for _ in range(n):
            self.latency.labels(release=release).observe(latency)


@pytest.fixture
def router() -> Iterator[Router]:
    registry = CollectorRegistry()
    requests = Counter("kiln_requests", "requests", ["release", "code"], registry=registry)
    errors = Counter("kiln_request_errors", "errors", ["release"], registry=registry)
    latency = PromHistogram(
        "kiln_request_duration_seconds",
        "latency",
        ["release"],
        registry=registry,
        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0),
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Router(f"http://127.0.0.1:{server.server_port}/metrics", requests, errors, latency)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_two_scrapes_give_the_traffic_in_between(router: Router) -> None:
    source = RouterMetrics(url=router.url)
    router.serve("v1", 500, 5, 0.02)  # history before the analysis starts
    first = source.read(["v1", "v2"], P95)
    assert isinstance(first["v1"], Counters)
    router.serve("v1", 100, 1, 0.02)
    router.serve("v2", 100, 10, 0.3)
    second = source.read(["v1", "v2"], P95)
    obs = observe(first, second, canary="v2", baseline="v1")
    assert isinstance(obs.canary, Sample) and isinstance(obs.baseline, Sample)
    assert (obs.baseline.requests, obs.baseline.errors) == (100, 1)
    # v2 had no series at the first scrape: its first window starts the clock only
    assert (obs.canary.requests, obs.canary.errors) == (0, 0)
    router.serve("v2", 100, 10, 0.3)
    third = source.read(["v1", "v2"], P95)
    obs = observe(second, third, canary="v2", baseline="v1")
    assert isinstance(obs.canary, Sample) and obs.canary.latency is not None
    assert (obs.canary.requests, obs.canary.errors) == (100, 10)
    assert obs.canary.latency.quantile(0.95) == pytest.approx(0.4875)
    source.close()


def test_a_sequential_judge_fed_by_scrapes_fails_a_bad_canary(router: Router) -> None:
    source = RouterMetrics(url=router.url)
    judge = SequentialJudge(SequentialConfig("e", MetricKind.ERROR_RATE, alpha=0.01))
    rng = np.random.default_rng(5)
    router.serve("v1", 1, 0, 0.02)
    router.serve("v2", 1, 0, 0.02)
    previous = source.read(["v1", "v2"], ERROR_RATE)
    scrapes = 0
    while isinstance(judge.verdict(), Pending) and scrapes < 200:
        router.serve("v1", 50, int(rng.binomial(50, 0.01)), 0.02)
        router.serve("v2", 50, int(rng.binomial(50, 0.08)), 0.02)
        current = source.read(["v1", "v2"], ERROR_RATE)
        judge.observe(observe(previous, current, canary="v2", baseline="v1"))
        previous = current
        scrapes += 1
    assert isinstance(judge.verdict(), Fail)
    assert scrapes < 60
    source.close()


def test_a_router_that_went_away_is_a_temporary_error(router: Router) -> None:
    dead = RouterMetrics(url="http://127.0.0.1:9/metrics", timeout=1.0)
    with pytest.raises(Temporary):
        dead.read(["v1"], ERROR_RATE)
    dead.close()
