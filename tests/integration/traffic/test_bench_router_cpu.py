"""The CPU benchmark's parts: the floor proxy relays, the fixed-count client counts,
callgrind's counters are read for exactly the measured requests (no timing)."""

from __future__ import annotations

import json
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


def test_the_benchmark_runs_end_to_end_with_a_baseline_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for tool in ("valgrind", "callgrind_control", "wrk", "haproxy"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.skip(f"{tool} is not installed")
    monkeypatch.chdir(tmp_path)
    own_src = bench_router_cpu.ROOT / "src"  # the same code as "kiln": a ratio near 1
    argv = ["--quick", "--requests", "300", "--runs", "1", "--seconds", "1"]
    assert bench_router_cpu.main([*argv, "--baseline-src", str(own_src)]) == 0
    payload = json.loads((tmp_path / ".bench" / "router_cpu.json").read_text())
    rows = {row["target"]: row for row in payload["rows"]}
    assert list(rows) == ["floor", "kiln-baseline", "kiln"]
    assert 0.9 < rows["kiln"]["instructions_vs_baseline"] < 1.1
    assert rows["kiln"]["ratio_to_floor"] > 1  # kiln does more than relay bytes
    for name in rows:
        assert (tmp_path / ".bench" / f"callgrind.{name}.out").exists()
