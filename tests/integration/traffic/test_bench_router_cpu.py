"""The CPU benchmark's parts: the floor proxy relays, the fixed-count client counts,
callgrind's counters are read for exactly the measured requests (no timing)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks import bench_router, bench_router_cpu

pytestmark = pytest.mark.integration


@pytest.fixture
def backend_port(tmp_path: Path) -> Iterator[int]:
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        pytest.skip("the static backend is an HAProxy frontend; haproxy is not installed")
    port, proc = bench_router.start_static_backend(tmp_path)
    try:
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("name", bench_router_cpu.TARGETS)
def test_each_target_answers_a_fixed_count_of_keep_alive_requests(
    tmp_path: Path, backend_port: int, name: str
) -> None:
    events: list[str] = []
    with bench_router_cpu._target(name, tmp_path, backend_port, []) as (port, _):
        # drive raises on any answer but 200 and on a closed keep-alive connection.
        bench_router_cpu.drive(
            port,
            40,
            100,
            between=lambda: events.append("between"),
            after=lambda: events.append("after"),
        )
    assert events == ["between", "after"]


def test_the_floor_under_callgrind_counts_the_measured_requests_only(
    tmp_path: Path, backend_port: int
) -> None:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        pytest.skip("valgrind (callgrind) is not installed")
    per_request, dump = bench_router_cpu.instructions("floor", tmp_path, backend_port, 200)
    assert bench_router_cpu.MEASURED in dump.read_text()
    # A relayed request costs thousands of instructions, never millions: start-up and
    # the warm-up (zeroed before the run) are not in the figure.
    assert 2_000 < per_request < 100_000
