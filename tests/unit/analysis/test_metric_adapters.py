"""The router and Prometheus sources parse at the edge and translate every failure."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from kiln.adapters.metrics.prometheus import PrometheusMetrics, render_query
from kiln.adapters.metrics.router import RouterMetricNames, RouterMetrics, parse_exposition
from kiln.core.analysis import Counters, Gauge, Histogram, Missing
from kiln.core.spec.models import AnalysisMetric
from kiln.errors import ConfigError, InvalidInput, Permanent, Temporary

EXPOSITION = """\
# HELP kiln_requests_total Requests served, per release.
# TYPE kiln_requests_total counter
kiln_requests_total{release="v1",code="200"} 980
kiln_requests_total{release="v1",code="500"} 20
kiln_requests_total{release="v2",code="200"} 95
kiln_requests_total{release="v2",code="503"} 5
# HELP kiln_request_errors_total Requests that failed, per release.
# TYPE kiln_request_errors_total counter
kiln_request_errors_total{release="v1"} 20
kiln_request_errors_total{release="v2"} 5
# HELP kiln_request_duration_seconds Request latency, per release.
# TYPE kiln_request_duration_seconds histogram
kiln_request_duration_seconds_bucket{release="v1",le="0.05"} 600
kiln_request_duration_seconds_bucket{release="v1",le="0.1"} 900
kiln_request_duration_seconds_bucket{release="v1",le="+Inf"} 1000
kiln_request_duration_seconds_count{release="v1"} 1000
kiln_request_duration_seconds_sum{release="v1"} 61.5
kiln_request_duration_seconds_bucket{release="v2",le="0.05"} 10
kiln_request_duration_seconds_bucket{release="v2",le="0.1"} 50
kiln_request_duration_seconds_bucket{release="v2",le="+Inf"} 100
kiln_request_duration_seconds_count{release="v2"} 100
kiln_request_duration_seconds_sum{release="v2"} 9.0
# HELP other_total Not ours.
# TYPE other_total counter
other_total 5
"""


def test_the_exposition_becomes_counters_per_release_summed_over_other_labels() -> None:
    parsed = parse_exposition(EXPOSITION, at=7.0).releases
    assert parsed == {
        "v1": Counters(7.0, 1000, 20, Histogram((0.05, 0.1), (600, 900), 1000)),
        "v2": Counters(7.0, 100, 5, Histogram((0.05, 0.1), (10, 50), 100)),
    }
    assert parsed["v2"].latency is not None
    assert parsed["v2"].latency.quantile(0.95) == pytest.approx(0.1)


def test_metric_names_are_settings() -> None:
    text = (
        'router_hits_total{svc="a"} 10\nrouter_fail_total{svc="a"} 1\n'
        'router_latency_bucket{svc="a",le="1.0"} 10\nrouter_latency_bucket{svc="a",le="+Inf"} 10\n'
    )
    names = RouterMetricNames("router_hits_total", "router_fail_total", "router_latency", "svc")
    assert parse_exposition(text, at=0.0, names=names).releases == {
        "a": Counters(0.0, 10, 1, Histogram((1.0,), (10,), 10))
    }


def test_text_that_is_not_prometheus_format_is_a_permanent_error() -> None:
    with pytest.raises(Permanent):
        parse_exposition('kiln_requests_total{release="v1" 12 oops\n', at=0.0)


def metric(**fields: Any) -> AnalysisMetric:
    return AnalysisMetric.model_validate({"name": "m", **fields}, strict=False)


def router(handler: Any) -> RouterMetrics:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return RouterMetrics(url="http://router/metrics", client=client)


def test_router_read_reports_unknown_releases_as_missing() -> None:
    source = router(lambda request: httpx.Response(200, text=EXPOSITION))
    readings = source.read(["v2", "v9"], metric(metric="error-rate"))
    assert isinstance(readings["v2"], Counters) and readings["v2"].errors == 5
    assert isinstance(readings["v9"], Missing)


def test_an_error_rate_without_an_error_counter_is_missing_not_zero() -> None:
    text = 'kiln_requests_total{release="v1"} 10\n'
    source = router(lambda request: httpx.Response(200, text=text))
    reading = source.read(["v1"], metric(metric="error-rate"))["v1"]
    assert isinstance(reading, Missing)
    assert "kiln_request_errors_total" in reading.reason
    assert isinstance(source.read(["v1"], metric(metric="request-rate"))["v1"], Counters)


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (refuse, Temporary),
        (lambda request: httpx.Response(502), Temporary),
        (lambda request: httpx.Response(404), Permanent),
    ],
)
def test_router_failures_are_translated(handler: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        router(handler).read(["v1"], metric(metric="error-rate"))


# --- Prometheus --------------------------------------------------------------------


def test_release_is_substituted_everywhere_it_is_named() -> None:
    query = 'sum(rate(x{release="{{release}}"}[1m])) / sum(rate(y{release="{{ release }}"}[1m]))'
    assert render_query(query, "sha256-abc.1") == (
        'sum(rate(x{release="sha256-abc.1"}[1m])) / sum(rate(y{release="sha256-abc.1"}[1m]))'
    )


@pytest.mark.parametrize("release", ['v1"} or vector(1) #', "", "a b", "x\n"])
def test_a_release_that_could_escape_the_query_is_refused(release: str) -> None:
    with pytest.raises(InvalidInput):
        render_query("x{release='{{release}}'}", release)


def prometheus(body: Any, status: int = 200) -> PrometheusMetrics:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=json.dumps(body) if not isinstance(body, str) else body)

    return PrometheusMetrics(
        url="http://prom:9090/", client=httpx.Client(transport=httpx.MockTransport(handler))
    )


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (vector("0.25"), Gauge),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}, Gauge),
        (vector(), Missing),
        (vector("1", "2"), Missing),
        (vector("NaN"), Missing),
    ],
)
def test_a_query_result_becomes_one_gauge_or_missing(body: Any, expected: type) -> None:
    reading = prometheus(body).read(["v1"], metric(source="prometheus", query="q"))["v1"]
    assert isinstance(reading, expected)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"status": "error", "errorType": "bad_data", "error": "parse error"}, 400, ConfigError),
        ({"status": "error", "errorType": "timeout", "error": "slow"}, 200, Temporary),
        ("<html>proxy</html>", 200, Permanent),
        ("", 503, Temporary),
        ("", 500, Temporary),
    ],
)
def test_prometheus_failures_are_translated(body: Any, status: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        prometheus(body, status).read(["v1"], metric(source="prometheus", query="q"))


def test_an_unreachable_prometheus_is_temporary() -> None:
    source = PrometheusMetrics(
        url="http://prom", client=httpx.Client(transport=httpx.MockTransport(refuse))
    )
    with pytest.raises(Temporary) as info:
        source.query("up")
    assert "cannot reach Prometheus" in str(info.value)


def test_metric_sources_dispatch_by_the_metrics_source() -> None:
    from kiln.adapters.metrics.composite import MetricSources

    router_source = router(lambda request: httpx.Response(200, text=EXPOSITION))
    both = MetricSources(router=router_source, prometheus=prometheus(vector("0.5")))
    assert isinstance(both.read(["v1"], metric(metric="error-rate"))["v1"], Counters)
    assert isinstance(both.read(["v1"], metric(source="prometheus", query="q"))["v1"], Gauge)
    with pytest.raises(ConfigError) as info:
        MetricSources(router=router_source).read(["v1"], metric(source="prometheus", query="q"))
    assert "not configured" in str(info.value)
