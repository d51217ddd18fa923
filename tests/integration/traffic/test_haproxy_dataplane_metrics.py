"""The composition root's HAProxy writes its request log to a named pipe that the
controller's ``SupervisedHAProxy`` reads: latency histograms per release, lines
written while no controller reads are read by the next one, and only one reader
at a time. Real HAProxy, real backends."""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

import pytest

from kiln.adapters.traffic.haproxy import base_config
from kiln.bootstrap import dataplane
from kiln.bootstrap.dataplane import SupervisedHAProxy
from kiln.core.traffic.metrics import RouterMetrics
from kiln.core.traffic.table import Backend, Release, RouteTable
from tests.integration.traffic.conftest import Processes, start_backends
from tests.integration.traffic.test_haproxy_dataplane import environment, get, state_dir

pytestmark = pytest.mark.integration
__all__ = ["state_dir"]  # the fixture, shared with the data plane's own tests


def counted(router: SupervisedHAProxy, want: int, timeout: float = 10.0) -> RouterMetrics:
    deadline = time.monotonic() + timeout
    while True:
        metrics = router.metrics()
        got = sum(m.latency.count for m in metrics.releases)
        if got >= want or time.monotonic() > deadline:
            return metrics
        time.sleep(0.05)


def test_the_controller_reads_the_request_log_and_the_next_one_continues(
    state_dir: Path, procs: Processes
) -> None:
    env = environment("{kind: haproxy}")
    (backend,) = start_backends(procs, ["a"])
    first = dataplane.router_for(state_dir, env)
    assert isinstance(first, SupervisedHAProxy)
    fifo = dataplane.haproxy_log_fifo(state_dir, "prod")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_IMODE(fifo.stat().st_mode) == 0o600
    config = (state_dir / "run" / "haproxy-prod.cfg").read_text()
    assert "log fd@9" in config
    port = int(dataplane.listen_address(state_dir, env).rsplit(":", 1)[1])
    first.apply(RouteTable(1, "prod", (Release("v1", 100, (Backend("127.0.0.1", backend.port),)),)))
    for _ in range(10):
        assert get(port) == "a"
    metrics = counted(first, 10)
    v1 = metrics.of("v1")
    assert v1 is not None and (v1.requests, v1.latency.count) == (10, 10)

    # A second router object (another controller) cannot read while the first does.
    second = SupervisedHAProxy(state_dir, env)
    assert second.router.log is not None and not second.router.log.start()

    # The first controller goes away; requests keep coming; the next one reads them.
    assert first.router.log is not None
    first.router.log.close()
    for _ in range(5):
        assert get(port) == "a"
    metrics = counted(second, 15)
    v1 = metrics.of("v1")
    assert v1 is not None and (v1.requests, v1.latency.count) == (15, 15)
    assert second.router.log is not None
    second.router.log.close()


def test_the_generated_config_with_a_request_log_is_valid(tmp_path: Path) -> None:
    config = tmp_path / "h.cfg"
    config.write_text(base_config("dev", "127.0.0.1:8080", tmp_path / "s.sock", log_fd=9))
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
