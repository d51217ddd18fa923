"""The HAProxy router's per-release metrics against a real HAProxy 2.6: latency
histograms read from its request log (one line per request through a named
pipe), counters that survive server deletion, an adapter restart and an HAProxy
restart, and lost log lines counted as unknown latency, never dropped silently."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from kiln.adapters.traffic.haproxy import HAProxyProcess, HAProxyRouter, base_config
from kiln.adapters.traffic.haproxy_metrics import LOG_FD, CountBook, LatencyLog
from kiln.adapters.traffic.haproxy_runtime import RuntimeAPI, parse_info
from kiln.core.analysis import Fail
from kiln.core.spec.models import AnalysisMetric, MetricSourceKind
from kiln.core.traffic.metrics import LATENCY_BOUNDS, ReleaseMetrics, RouterMetrics
from kiln.core.traffic.table import Backend, Release, RouteTable
from kiln.ports.clock import SystemClock
from kiln.services.analysis import AnalysisSession, RouterSource

from .conftest import BackendProc, Processes, free_port, start_backends

pytestmark = pytest.mark.integration


@dataclass
class Rig:
    tmp: Path
    url: str
    process: HAProxyProcess
    api: RuntimeAPI
    fifo: Path
    readers: list[LatencyLog] = field(default_factory=list)

    def router(self, book: CountBook, *, reading: bool = True) -> HAProxyRouter:
        log = LatencyLog(self.fifo, book) if reading else None
        if log is not None:
            self.readers.append(log)
        return HAProxyRouter(
            api=self.api,
            environment="dev",
            state_file=self.tmp / "routes.json",
            book=book,
            log=log,
        )

    def stop(self) -> None:
        for reader in self.readers:
            reader.close()
        self.process.stop()

    def restart(self) -> None:
        self.process.stop()
        self.api = self.process.start()


def start_haproxy(tmp: Path, *, pipe_size: int = 1 << 20) -> Rig:
    port = free_port()
    sock = tmp / "admin.sock"
    config = tmp / "haproxy.cfg"
    config.write_text(base_config("dev", f"127.0.0.1:{port}", sock, log_fd=LOG_FD))
    fifo = tmp / "requests.log"
    process = HAProxyProcess(config=config, stats_socket=sock, log_fifo=fifo, pipe_size=pipe_size)
    api = process.start()
    return Rig(tmp, f"http://127.0.0.1:{port}", process, api, fifo)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = start_haproxy(tmp_path)
    try:
        yield rig
    finally:
        rig.stop()


def table(generation: int, *releases: tuple[str, int, BackendProc]) -> RouteTable:
    return RouteTable(
        generation,
        "dev",
        tuple(Release(name, weight, (Backend.parse(b.address),)) for name, weight, b in releases),
    )


def send(url: str, count: int) -> None:
    with httpx.Client(base_url=url) as http:
        for _ in range(count):
            assert http.get("/").status_code == 200


def settled(
    router: HAProxyRouter, ready: Callable[[RouterMetrics], bool], timeout: float = 10.0
) -> RouterMetrics:
    """Metrics once ``ready`` holds: a request's log line follows its response by a moment."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = router.metrics()
        if ready(metrics) or time.monotonic() > deadline:
            return metrics
        time.sleep(0.05)


def logged_all(metrics: RouterMetrics) -> bool:
    return all(m.latency.count == m.requests for m in metrics.releases)


def of(metrics: RouterMetrics, release: str) -> ReleaseMetrics:
    found = metrics.of(release)
    assert found is not None, f"no metrics for {release}: {metrics}"
    return found


def test_latency_histograms_per_release_match_the_requests_sent(rig: Rig, procs: Processes) -> None:
    (fast,) = start_backends(procs, ["fast"])
    (slow,) = start_backends(procs, ["slow"], delay_ms=30)
    router = rig.router(CountBook())
    router.apply(table(1, ("a", 50, fast), ("b", 50, slow)))
    send(rig.url, 120)
    metrics = settled(router, logged_all)
    a, b = of(metrics, "a"), of(metrics, "b")
    # Counts are exact: one histogram entry per answered request, per release.
    assert (a.requests, b.requests) == (60, 60)
    assert (a.latency.count, b.latency.count) == (60, 60)
    # Every request to b took at least 30 ms: nothing in a bucket at or below 25 ms.
    at_or_below_25ms = LATENCY_BOUNDS.index(0.025) + 1
    assert sum(b.latency.counts[:at_or_below_25ms]) == 0
    assert b.latency.quantile(0.5) is not None and b.latency.quantile(0.5) >= 0.05
    assert a.latency.quantile(0.5) is not None and a.latency.quantile(0.5) <= 0.025
    assert 60 * 0.030 <= b.latency.sum_seconds <= 60 * 1.0
    # The sub-millisecond bucket stays empty: HAProxy's timers are whole milliseconds.
    assert a.latency.counts[0] == 0 and b.latency.counts[0] == 0


def total_logged(count: int) -> Callable[[RouterMetrics], bool]:
    def ready(metrics: RouterMetrics) -> bool:
        return sum(m.latency.count for m in metrics.releases) == count

    return ready


def send_concurrently(url: str, count: int, workers: int = 8) -> None:
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda _: send(url, count // workers), range(workers)):
            pass


def test_a_sequential_latency_judge_fails_a_slower_canary_on_haproxy_histograms(
    rig: Rig, procs: Processes
) -> None:
    (fast,) = start_backends(procs, ["fast"])
    (slow,) = start_backends(procs, ["slow"], delay_ms=30)
    router = rig.router(CountBook())
    router.apply(table(1, ("stable", 50, fast), ("canary", 50, slow)))
    metric = AnalysisMetric.model_validate(
        {"name": "p95", "metric": "latency-p95", "judge": "sequential"}, strict=False
    )
    session = AnalysisSession.start(
        step=0, canary="canary", baseline="stable", deadline=math.inf, metrics=[metric]
    )
    sources = {MetricSourceKind.ROUTER: RouterSource(router, SystemClock())}
    session.poll(sources, now=0.0)  # the first reading starts the clock
    sent = 0
    for _ in range(8):
        send_concurrently(rig.url, 200)
        sent += 200
        settled(router, total_logged(sent))
        session.poll(sources, now=0.0)
        if isinstance(session.last["p95"], Fail):
            break
    verdict = session.last["p95"]
    assert isinstance(verdict, Fail), verdict


def test_counters_never_go_backwards_when_servers_are_deleted_or_haproxy_restarts(
    rig: Rig, procs: Processes
) -> None:
    one, two, three = start_backends(procs, ["one", "two", "three"])
    counts = rig.tmp / "counts.json"
    router = rig.router(CountBook(counts))
    router.apply(table(1, ("a", 50, one), ("b", 50, two)))
    send(rig.url, 40)
    before = settled(router, logged_all)
    assert (of(before, "b").requests, of(before, "b").latency.count) == (20, 20)

    # b moves to another backend: its first server is drained and deleted.
    router.apply(table(2, ("a", 50, one), ("b", 50, three)))
    assert router.settle(timeout=10)
    assert f"s_127.0.0.1_{two.port}" not in router.servers()
    after = router.metrics()
    for release in ("a", "b"):
        assert of(after, release).requests == of(before, release).requests
        assert of(after, release).latency.counts == of(before, release).latency.counts
    send(rig.url, 20)
    grown = settled(router, lambda m: of(m, "b").latency.count == 30)
    assert (of(grown, "a").requests, of(grown, "b").requests) == (30, 30)
    assert of(grown, "b").latency.count == 30

    # A restarted adapter (new book, new reader from the same files) continues.
    assert router.log is not None
    router.log.close()
    reopened = rig.router(CountBook(counts))
    assert reopened.metrics().releases == grown.releases
    assert reopened.log is not None
    reopened.log.close()

    # HAProxy restarted: its counters start from zero, the book keeps the last ones.
    rig.restart()
    restarted = rig.router(CountBook(counts))
    restarted.restore()
    assert [m.requests for m in restarted.metrics().releases] == [30, 30]
    send(rig.url, 10)
    final = settled(restarted, lambda m: sum(r.latency.count for r in m.releases) == 70)
    assert [m.requests for m in final.releases] == [35, 35]
    assert [m.latency.count for m in final.releases] == [35, 35]
    assert restarted.log is not None
    restarted.log.close()


def test_log_lines_lost_while_nobody_reads_are_counted_as_unknown_latency(
    tmp_path: Path, procs: Processes
) -> None:
    rig = start_haproxy(tmp_path, pipe_size=4096)  # about 200 lines fit
    try:
        (backend,) = start_backends(procs, ["a"])
        book = CountBook()
        router = rig.router(book, reading=False)
        router.apply(table(1, ("a", 100, backend)))
        router.metrics()  # the book's first read: lost lines count from here
        send(rig.url, 600)
        dropped = int(parse_info(rig.api.command("show info"))["DroppedLogs"])
        assert dropped > 0
        reader = rig.router(book)
        metrics = settled(reader, logged_all)
        a = of(metrics, "a")
        # Every request is in the histogram: read lines in their buckets, lost ones
        # in the overflow bucket (latency unknown), so a high quantile is unknown.
        assert a.requests == a.latency.count == 600
        assert a.latency.counts[-1] == dropped == book.lost
        assert a.latency.quantile(0.99) is None
        assert f"{dropped} request log lines lost" in reader.health().detail
    finally:
        rig.stop()
