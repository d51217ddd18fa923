"""The C open-loop generator (benchmarks/pacer.c) against real backend processes."""

from __future__ import annotations

import csv
import socket
import subprocess
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from benchmarks import bench_router, pacer

from .conftest import Processes, start_backends

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pacer.build(tmp_path_factory.mktemp("pacer"))


def paced(binary: Path, urls: list[str], **options: Any) -> list[dict[str, Any]]:
    got = pacer.run(urls, binary=binary, **options)
    targets: list[dict[str, Any]] = got["targets"]
    return targets


def test_it_holds_the_offered_rate_and_times_every_answer(
    procs: Processes, binary: Path, tmp_path: Path
) -> None:
    (backend,) = start_backends(procs, ["fast"])
    samples = tmp_path / "samples.csv"
    (got,) = paced(
        binary, [f"http://{backend.address}/"], rate=400, seconds=1, warmup=0.2, samples=samples
    )
    assert got["target"] == backend.address
    assert (got["completed"], got["errors"]) == (400, 0)
    assert 0 < got["p50_ms"] <= got["p99_ms"] <= got["p999_ms"] <= got["max_ms"]
    # From the actual send, never longer than from the due time.
    assert 0 < got["service_p50_ms"] <= got["p50_ms"]
    assert got["service_p999_ms"] <= got["p999_ms"]
    assert got["send_lag_p50_ms"] >= 0 and got["generator_cpu_wait_ms"] >= 0
    # The samples file holds every measured answer, the summary's slowest among them.
    with samples.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 400
    assert {row["target"] for row in rows} == {"0"} and {row["status"] for row in rows} == {"200"}
    slowest = max(int(row["latency_ns"]) for row in rows)
    assert slowest / 1e6 == pytest.approx(got["max_ms"], abs=1e-5)
    assert min(int(row["due_ns"]) for row in rows) >= 200_000_000  # after the warm-up


def test_a_stalled_target_shows_as_latency_not_as_a_lower_rate(
    procs: Processes, binary: Path
) -> None:
    # 10 requests due over 1 s, each answered after 0.8 s, 4 connections: counted
    # from when each was due, the last ones also waited for a free connection.
    (backend,) = start_backends(procs, ["slow"])
    (got,) = paced(
        binary, [f"http://{backend.address}/slow"], rate=10, seconds=1, warmup=0, connections=4
    )
    assert (got["completed"], got["errors"]) == (10, 0)
    assert got["p50_ms"] >= 800
    assert got["max_ms"] >= 1300
    assert got["send_lag_p99_ms"] >= 500  # sent late: no connection was free
    assert 800 <= got["service_p50_ms"] <= got["service_p999_ms"] < 1200


@pytest.mark.parametrize("path", ["/chunked", "/big?1"])
def test_chunked_and_large_answers_are_read_to_their_end(
    procs: Processes, binary: Path, path: str
) -> None:
    # A misread body would leave bytes on the connection: the next answer would
    # be refused as unasked-for and counted as an error.
    (backend,) = start_backends(procs, ["framing"])
    (got,) = paced(
        binary, [f"http://{backend.address}{path}"], rate=40, seconds=0.5, warmup=0, connections=2
    )
    assert (got["completed"], got["errors"]) == (20, 0)


def test_an_answer_head_too_large_is_an_error_not_a_hang(binary: Path) -> None:
    # A server whose answer head (20 KB) exceeds the generator's 16 KiB buffer:
    # each request is counted as an error on a connection opened anew.
    head = b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 20_000 + b"\r\ncontent-length: 0\r\n\r\n"
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, suppress(OSError):  # the generator resets what it refuses
            while not stop.is_set() and conn.recv(4096):
                conn.sendall(head)

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        port = server.getsockname()[1]
        (got,) = paced(
            binary, [f"http://127.0.0.1:{port}/"], rate=20, seconds=0.5, warmup=0, connections=2
        )
    finally:
        stop.set()
        acceptor.join(5)
        server.close()
    assert got["completed"] == 0
    assert got["errors"] == 10


def test_two_targets_share_the_run_in_alternating_windows(procs: Processes, binary: Path) -> None:
    one, two = start_backends(procs, ["one", "two"])
    first, second = paced(
        binary,
        [f"http://{one.address}/", f"http://{two.address}/"],
        rate=400,
        seconds=1,
        warmup=0.2,
        window_ms=100,
    )
    assert (first["target"], second["target"]) == (one.address, two.address)
    # 1 s of 100 ms windows at 400/s: 400 requests, five windows (about 200) each.
    assert first["completed"] + second["completed"] == 400
    assert 190 <= first["completed"] <= 210
    assert first["errors"] == second["errors"] == 0
    # Each target's rate is the rate of its own windows.
    assert first["offered_rps"] == second["offered_rps"] == 400


def test_interleaved_targets_each_get_the_full_rate_at_once(procs: Processes, binary: Path) -> None:
    one, two = start_backends(procs, ["one", "two"])
    first, second = paced(
        binary,
        [f"http://{one.address}/", f"http://{two.address}/"],
        rate=200,
        seconds=1,
        warmup=0.2,
        window_ms=0,
    )
    # Every other request: 200 each in the measured second, 400 in all.
    assert abs(first["completed"] - 200) <= 1 and abs(second["completed"] - 200) <= 1
    assert first["completed"] + second["completed"] == 400
    assert first["errors"] == second["errors"] == 0


def test_the_router_benchmark_pairs_direct_and_proxy_in_that_order(
    procs: Processes, binary: Path
) -> None:
    direct, proxy = start_backends(procs, ["direct", "proxy"])
    for pairing in bench_router.PAIRINGS:
        got_direct, got_proxy = bench_router._paced(
            f"http://{direct.address}/", f"http://{proxy.address}/", 1.0, 200, pairing=pairing
        )
        assert got_direct["target"] == direct.address
        assert got_proxy["target"] == proxy.address
        # Each gets 1 s at 200/s: in alternating windows (2 s in all) or at once.
        assert 190 <= got_direct["completed"] <= 210, pairing
        assert 190 <= got_proxy["completed"] <= 210, pairing


def test_a_refused_target_is_named_and_nothing_is_measured(binary: Path) -> None:
    done = subprocess.run(
        [str(binary), "-t", "127.0.0.1:1", "-r", "10"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 3
    assert "cannot connect to 127.0.0.1:1" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-r", "10"], "no target"),
        (["-t", "localhost:80", "-r", "10"], "IPV4:PORT"),
        (["-t", "127.0.0.1:80"], "-r RATE"),
        (["-t", "127.0.0.1:80", "-r", "10", "-u", "x"], "must start with /"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(
    binary: Path, args: list[str], message: str
) -> None:
    done = subprocess.run([str(binary), *args], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert message in done.stderr


def test_a_missing_or_failing_compiler_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(pacer.PacerUnavailable, match="no-such-cc"):
        pacer.build(tmp_path / "a")
    monkeypatch.delenv("CC")
    broken = tmp_path / "pacer.c"
    broken.write_text("int main(void) { return undeclared; }\n")
    monkeypatch.setattr(pacer, "SOURCE", broken)
    with pytest.raises(pacer.PacerUnavailable, match="undeclared"):
        pacer.build(tmp_path / "b")
    assert not list((tmp_path / "b").iterdir())  # no half-built binary left


def test_a_changed_source_is_built_anew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "pacer.c"
    source.write_bytes(pacer.SOURCE.read_bytes())
    monkeypatch.setattr(pacer, "SOURCE", source)
    first = pacer.build(tmp_path / "bin")
    assert pacer.build(tmp_path / "bin") == first  # cached
    source.write_bytes(source.read_bytes() + b"\n/* edited */\n")
    second = pacer.build(tmp_path / "bin")
    assert second != first and second.exists()


def test_urls_must_be_plain_http_with_one_path() -> None:
    with pytest.raises(ValueError, match="http://IPV4:PORT/PATH"):
        pacer.command(["https://127.0.0.1:1/"], rate=1, seconds=1, binary=Path("x"))
    with pytest.raises(ValueError, match="same path"):
        pacer.command(
            ["http://127.0.0.1:1/a", "http://127.0.0.1:2/b"], rate=1, seconds=1, binary=Path("x")
        )
