"""The benchmark's open-loop load generator against a real backend process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Processes, start_backends

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def loadgen(url: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", url, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def test_it_holds_the_offered_rate_and_times_every_answer(procs: Processes) -> None:
    (backend,) = start_backends(procs, ["fast"])
    got = loadgen(
        f"http://{backend.address}/", "--rate", "400", "--seconds", "1", "--warmup", "0.2"
    )
    assert got["errors"] == 0
    assert got["completed"] == 400
    assert 0 < got["p50_ms"] <= got["p99_ms"] <= got["p999_ms"] <= got["max_ms"]
    # From the actual send, never longer than from the due time.
    assert 0 < got["service_p50_ms"] <= got["p50_ms"]
    assert got["service_p999_ms"] <= got["p999_ms"]
    assert got["loadavg_1m"] >= 0 and got["generator_cpu_wait_ms"] >= 0


def test_a_stalled_target_shows_as_latency_not_as_a_lower_rate(procs: Processes) -> None:
    # 10 requests due over 1 s, each answered after 0.8 s, 4 connections: a closed
    # loop would report 0.8 s; counted from when each was due, the last ones waited
    # for a free connection too (coordinated omission is not hidden).
    (backend,) = start_backends(procs, ["slow"])
    got = loadgen(
        f"http://{backend.address}/slow",
        *("--rate", "10", "--seconds", "1", "--warmup", "0", "--connections", "4"),
    )
    assert (got["completed"], got["errors"]) == (10, 0)
    assert got["p50_ms"] >= 800
    assert got["max_ms"] >= 1300
    assert got["send_lag_p99_ms"] >= 500  # sent late: no connection was free
    # Timed from the actual send (what a closed-loop tool reports), the wait vanishes.
    assert 800 <= got["service_p50_ms"] <= got["service_p999_ms"] < 1200
