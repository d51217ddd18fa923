"""The router benchmark's placements put processes where they say (no timing)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks import bench_router

pytestmark = pytest.mark.integration


@pytest.fixture
def sleepers() -> Iterator[dict[str, tuple[str, int]]]:
    procs = [subprocess.Popen(["sleep", "60"]) for _ in bench_router.NAMES]
    try:
        yield {
            name: (f"http://127.0.0.1:1/{name}", proc.pid)
            for name, proc in zip(bench_router.NAMES, procs, strict=True)
        }
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


def test_pinned_gives_the_proxies_a_cpu_of_their_own(
    sleepers: dict[str, tuple[str, int]],
) -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.skip("pinning needs two CPUs")
    prefix, where = bench_router._place(sleepers, "pinned", realtime=False)
    assert prefix == ["taskset", "-c", str(bench_router.GENERATOR_CPU)]
    assert os.sched_getaffinity(sleepers["direct"][1]) == {bench_router.GENERATOR_CPU}
    for proxy in bench_router.PROXIES:
        assert os.sched_getaffinity(sleepers[proxy][1]) == {bench_router.PROXY_CPU}
    assert set(where) == {"proxy", "backend+client"}
    # Shared afterwards: every process may run anywhere again, the client unprefixed.
    prefix, _ = bench_router._place(sleepers, "shared", realtime=False)
    assert prefix == []
    every = os.sched_getaffinity(0)
    assert all(os.sched_getaffinity(pid) == every for _, pid in sleepers.values())


def test_busy_and_steal_come_from_the_cpu_counters() -> None:
    # user nice system idle iowait irq softirq steal
    got = bench_router._busy_and_steal([0] * 8, [20, 0, 10, 60, 0, 0, 0, 10])
    assert got == {"busy_pct": 40.0, "steal_pct": 10.0}


def test_run_delay_grows_while_a_process_waits_for_a_cpu() -> None:
    # Two busy loops pinned to one CPU: each waits for the other about half the time.
    code = "import time\nend = time.monotonic() + 0.4\nwhile time.monotonic() < end: pass\n"
    cpu = str(min(os.sched_getaffinity(0)))
    procs = [subprocess.Popen(["taskset", "-c", cpu, sys.executable, "-c", code]) for _ in range(2)]
    try:
        before = bench_router._run_delay_ms(procs[0].pid)
        procs[1].wait(timeout=30)
        after = bench_router._run_delay_ms(procs[0].pid)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
    assert after > before >= 0


def test_rt_limit_reads_the_kernel_settings() -> None:
    got = bench_router._rt_limit()
    runtime = int(Path("/proc/sys/kernel/sched_rt_runtime_us").read_text())
    assert got == "none" if runtime < 0 else got.endswith(" ms") and " per " in got


def _fake_cpu(root: Path, cpu: int, states: list[tuple[str, str]]) -> list[Path]:
    flags = []
    for index, (name, disabled) in enumerate(states):
        state = root / f"cpu{cpu}" / "cpuidle" / f"state{index}"
        state.mkdir(parents=True)
        (state / "name").write_text(name + "\n")
        (state / "disable").write_text(disabled + "\n")
        flags.append(state / "disable")
    return flags


def test_poll_idle_disables_halting_states_and_puts_them_back(tmp_path: Path) -> None:
    # A sysfs-shaped tree: POLL is left alone, an already-disabled state stays so.
    cpu0 = _fake_cpu(tmp_path, 0, [("POLL", "0"), ("haltpoll idle", "0")])
    cpu1 = _fake_cpu(tmp_path, 1, [("POLL", "0"), ("C1", "0"), ("C6", "1")])
    with bench_router.poll_idle({0, 1}, root=tmp_path) as changed:
        assert changed == {"disabled_idle_states": {"cpu0": ["haltpoll idle"], "cpu1": ["C1"]}}
        assert [f.read_text().strip() for f in cpu0 + cpu1] == ["0", "1", "0", "1", "1"]
    assert [f.read_text().strip() for f in cpu0 + cpu1] == ["0", "0", "0", "0", "1"]


def test_poll_idle_restores_on_error_and_refuses_without_cpuidle(tmp_path: Path) -> None:
    flags = _fake_cpu(tmp_path, 0, [("POLL", "0"), ("C1", "0")])
    with pytest.raises(RuntimeError), bench_router.poll_idle({0}, root=tmp_path):
        raise RuntimeError("the benchmark failed")
    assert flags[1].read_text().strip() == "0"
    # A CPU without cpuidle states: refused, and the CPU before it restored.
    with (
        pytest.raises(FileNotFoundError, match="cpu1"),
        bench_router.poll_idle({0, 1}, root=tmp_path),
    ):
        pass
    assert flags[1].read_text().strip() == "0"
