"""The Prometheus source against a real Prometheus 2.42 scraping a small exporter.

The fixture starts an exporter (prometheus_client's ``start_http_server`` in a
subprocess, counting requests and errors for releases v1 and v2), writes a
Prometheus config that scrapes it every second, starts ``/usr/bin/prometheus``
on a loopback port with its TSDB in a temp dir, and polls until the first
samples are queryable (about 6-7 s after start). Both processes are killed by
PID when the module's tests end, pass or fail.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiln.adapters.metrics.prometheus import PrometheusMetrics
from kiln.core.analysis import Gauge, Missing
from kiln.core.spec.models import AnalysisMetric
from kiln.errors import ConfigError, Temporary

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

EXPORTER = textwrap.dedent(
    """
    import sys, time
    from prometheus_client import Counter, start_http_server

    requests = Counter("demo_requests", "requests", ["release"])
    errors = Counter("demo_request_errors", "errors", ["release"])
    start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    while True:
        requests.labels(release="v1").inc(100)
        errors.labels(release="v1").inc(1)
        requests.labels(release="v2").inc(100)
        errors.labels(release="v2").inc(10)
        time.sleep(0.1)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except (httpx.HTTPError, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("prometheus")
    exporter_port, web_port = free_port(), free_port()
    script = tmp / "exporter.py"
    script.write_text(EXPORTER)
    config = tmp / "prometheus.yml"
    config.write_text(
        textwrap.dedent(
            f"""
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: demo
                static_configs:
                  - targets: ["127.0.0.1:{exporter_port}"]
            """
        )
    )
    log = (tmp / "prometheus.log").open("wb")
    exporter = subprocess.Popen([sys.executable, str(script), str(exporter_port)])
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{web_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{web_port}"
    try:

        def ready() -> bool:
            query = {"query": 'demo_requests_total{release="v2"}'}
            body = httpx.get(f"{url}/api/v1/query", params=query, timeout=2).json()
            return bool(body["data"]["result"])

        wait_for(ready, 60, "Prometheus' first sample")
        yield url
    finally:
        stop(server)
        stop(exporter)
        log.close()


@pytest.fixture
def source(prometheus_url: str) -> Iterator[PrometheusMetrics]:
    client = PrometheusMetrics(url=prometheus_url)
    try:
        yield client
    finally:
        client.close()


def metric(query: str, **fields: object) -> AnalysisMetric:
    return AnalysisMetric.model_validate(
        {"name": "q", "source": "prometheus", "query": query, **fields}, strict=False
    )


def test_a_query_per_release_reads_each_release(source: PrometheusMetrics) -> None:
    query = (
        'sum(demo_request_errors_total{release="{{release}}"})'
        ' / sum(demo_requests_total{release="{{release}}"})'
    )
    readings = source.read(["v1", "v2"], metric(query))
    v1, v2 = readings["v1"], readings["v2"]
    assert isinstance(v1, Gauge) and isinstance(v2, Gauge)
    # the exporter bumps two counters one after the other; a scrape can fall between
    assert v1.value == pytest.approx(0.01, rel=0.05)
    assert v2.value == pytest.approx(0.10, rel=0.05)


def test_a_release_with_no_series_is_missing(source: PrometheusMetrics) -> None:
    reading = source.read(["v9"], metric('sum(demo_requests_total{release="{{release}}"})'))["v9"]
    assert isinstance(reading, Missing)
    assert "no series" in reading.reason


def test_several_series_are_refused_rather_than_picking_one(source: PrometheusMetrics) -> None:
    reading = source.read(["v1"], metric("demo_requests_total"))["v1"]
    assert isinstance(reading, Missing)
    assert "aggregate" in reading.reason


def test_a_query_prometheus_rejects_is_a_config_error(source: PrometheusMetrics) -> None:
    with pytest.raises(ConfigError) as info:
        source.read(["v1"], metric('sum(demo_requests_total{release="{{release}}"}'))
    assert "bad_data" in str(info.value)


def test_a_range_query_returns_points_every_step(source: PrometheusMetrics) -> None:
    query = 'sum(demo_requests_total{release="v1"})'

    def points() -> tuple[tuple[float, float], ...]:
        now = time.time()
        series = source.query_range(query, start=now - 5, end=now, step=1)
        assert len(series) == 1
        return series[0].points

    wait_for(lambda: len(points()) >= 3, 30, "three scrapes in the range")
    points_now = points()
    assert len(points_now) >= 3
    values = [v for _, v in points_now]
    assert values == sorted(values)  # a counter only grows


def test_a_prometheus_that_is_not_there_is_temporary() -> None:
    absent = PrometheusMetrics(url=f"http://127.0.0.1:{free_port()}", timeout=1.0)
    try:
        with pytest.raises(Temporary):
            absent.read(["v1"], metric("up"))
    finally:
        absent.close()
