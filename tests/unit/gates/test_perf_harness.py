"""The load-test harness, with a fake load generator: parsing and alternation."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from kiln.errors import ConfigError, InvalidInput
from kiln.services.perf import _run_hey, measure, parse_hey_csv, percentile

HEADER = (
    "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset\n"
)


def _csv(times_ms: Sequence[float], status: int = 200) -> str:
    rows = [f"{t / 1000:.4f},0,0,0,0,0,{status},0.1" for t in times_ms]
    return HEADER + "\n".join(rows) + "\n"


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 95) == 95
    assert percentile([5.0], 95) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2
    with pytest.raises(ValueError, match="no values"):
        percentile([], 95)


def test_hey_csv_gives_p95_of_successes_and_throughput() -> None:
    text = _csv([10.0] * 19 + [30.0]) + "0.0010,0,0,0,0,0,500,0.2\n"
    run = parse_hey_csv(text, "http://127.0.0.1:1/", duration=2.0)
    assert (run.ok, run.failed, run.p95_ms, run.throughput_rps) == (20, 1, 10.0, 10.0)


def test_unreadable_output_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not hey's CSV"):
        parse_hey_csv("Error: connection refused\n", "u", 1.0)
    with pytest.raises(InvalidInput, match="unreadable row"):
        parse_hey_csv(HEADER + "x,0,0,0,0,0,200,0\n", "u", 1.0)


def test_measure_alternates_baseline_and_candidate_each_round() -> None:
    calls: list[str] = []

    def fake(argv: Sequence[str], timeout: float) -> str:
        url = argv[-1]
        calls.append(url)
        assert list(argv[:7]) == ["hey", "-z", "1.5s", "-c", "4", "-o", "csv"]
        assert "-disable-keepalive" in argv
        return _csv([20.0] * 10 if "cand" in url else [10.0] * 10)

    base, cand = "http://127.0.0.1:1/base", "http://127.0.0.1:2/cand"
    perf = measure(cand, base, duration=1.5, rounds=3, concurrency=4, runner=fake, hey="hey")
    assert calls == [base, cand] * 3
    assert perf.candidate.p95_ms == (20.0, 20.0, 20.0)
    assert perf.baseline is not None and perf.baseline.p95_ms == (10.0, 10.0, 10.0)
    assert perf.first_release is False


def test_no_baseline_means_first_release() -> None:
    perf = measure(
        "http://127.0.0.1:2/", None, rounds=1, runner=lambda a, t: _csv([1.0]), hey="hey"
    )
    assert perf.baseline is None and perf.first_release is True


@pytest.mark.parametrize(
    ("cand", "base", "message"),
    [
        ("http://example.com/", None, "only loopback"),
        ("http://127.0.0.1:1/", "http://10.0.0.1/", "only loopback"),
        ("http://127.0.0.1:1/", "http://127.0.0.1:1/", "same URL"),
    ],
)
def test_remote_or_identical_targets_are_refused(cand: str, base: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        measure(cand, base, runner=lambda a, t: "", hey="hey")


def test_an_interrupt_while_the_load_generator_starts_leaves_none_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ctrl-C (or SIGTERM, which the CLI turns into the same) lands after the fork but
    # before Popen hands the child back: the window in which a plain subprocess.run
    # leaves it running with nobody holding it.
    started: list[subprocess.Popen[str]] = []

    class InterruptedWhileStarting(subprocess.Popen[str]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(subprocess, "Popen", InterruptedWhileStarting)
    try:
        with pytest.raises(KeyboardInterrupt):
            _run_hey([sys.executable, "-c", "import time; time.sleep(60)"], timeout=120)
        (child,) = started
        assert child.poll() is not None, "the load generator outlived the interrupt"
    finally:
        for child in started:
            if child.poll() is None:
                child.kill()
                child.communicate()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
