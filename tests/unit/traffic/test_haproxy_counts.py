"""The HAProxy router's count book: request-log lines into histograms, counts kept
across server deletion and HAProxy restarts, lost lines charged as unknown latency."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kiln.adapters.traffic.haproxy_metrics import (
    KEEP_RELEASES,
    CountBook,
    LatencyLog,
    Tally,
    bucket_of,
    counters,
    make_fifo,
)
from kiln.core.traffic.metrics import LATENCY_BOUNDS
from kiln.errors import ConfigError

A1, A2, B1 = "be_dev/s_a1", "be_dev/s_a2", "be_dev/s_b1"


@pytest.mark.parametrize(
    ("ms", "bound"),
    [(0, 0.001), (1, 0.0025), (4, 0.005), (9, 0.01), (24, 0.025), (25, 0.05), (9999, 10.0)],
)
def test_a_whole_millisecond_timer_counts_at_the_end_of_its_millisecond(
    ms: int, bound: float
) -> None:
    assert bucket_of(ms) == LATENCY_BOUNDS.index(bound)


def test_ten_seconds_and_more_fall_in_the_overflow_bucket() -> None:
    assert bucket_of(10_000) == len(LATENCY_BOUNDS)


def book_with_owners() -> CountBook:
    book = CountBook()
    book.declare({A1: "a", A2: "a", B1: "b"})
    return book


def test_log_lines_become_histograms_and_bad_lines_are_counted() -> None:
    book = book_with_owners()
    book.observe(
        [
            b"k1 be_dev s_a1 200 3",
            b"k1 be_dev s_a1 503 40",
            b"k1 be_dev <NOSRV> 503 0",  # no server answered: not a release's request
            b"k1 be_dev s_a1 -1 5",  # aborted before any status
            b"garbage",
            b"k1 be_dev s_a1 200 x",
        ]
    )
    assert book.malformed == 2
    tally = book.latency[A1]
    assert sum(tally.buckets) == 2
    assert tally.buckets[LATENCY_BOUNDS.index(0.005)] == 1
    assert tally.buckets[LATENCY_BOUNDS.index(0.05)] == 1
    assert tally.latency_sum == pytest.approx(0.0035 + 0.0405)


def test_totals_sum_live_servers_per_release() -> None:
    book = book_with_owners()
    book.observe([b"k1 be_dev s_a1 200 1", b"k1 be_dev s_b1 200 1"])
    totals = book.read(
        identity="1@1",
        dropped=0,
        live={A1: counters(5, 1, 0), A2: counters(3, 0, 2), B1: counters(1, 0, 0)},
        releases=["a", "b"],
    )
    assert (totals["a"].requests, totals["a"].responses_5xx, totals["a"].connect_failures) == (
        8,
        1,
        2,
    )
    assert sum(totals["a"].buckets) == 1 and sum(totals["b"].buckets) == 1


def test_a_deleted_server_keeps_its_last_counts_in_its_release() -> None:
    book = book_with_owners()
    book.observe([b"k1 be_dev s_a2 200 1"])
    book.read(
        identity="1@1",
        dropped=0,
        live={A1: counters(5, 0, 0), A2: counters(3, 0, 0)},
        releases=["a"],
    )
    book.retire(A2, counters(4, 1, 0), identity="1@1")  # final counts, read in maintenance
    totals = book.read(identity="1@1", dropped=0, live={A1: counters(6, 0, 0)}, releases=["a"])
    assert (totals["a"].requests, totals["a"].responses_5xx) == (10, 1)
    assert sum(totals["a"].buckets) == 1
    # A late line of the deleted server still lands in its release.
    book.observe([b"k1 be_dev s_a2 200 1"])
    totals = book.read(identity="1@1", dropped=0, live={A1: counters(6, 0, 0)}, releases=["a"])
    assert sum(totals["a"].buckets) == 2 and totals["a"].requests == 10


def test_an_haproxy_restart_keeps_the_last_counts_of_the_old_process() -> None:
    book = book_with_owners()
    book.read(identity="1@1", dropped=7, live={A1: counters(50, 2, 1)}, releases=["a"])
    totals = book.read(identity="2@9", dropped=0, live={A1: counters(3, 0, 0)}, releases=["a"])
    assert (totals["a"].requests, totals["a"].responses_5xx, totals["a"].connect_failures) == (
        53,
        2,
        1,
    )


def test_lost_lines_count_as_unknown_latency_in_every_current_release() -> None:
    book = book_with_owners()
    # Drops before the book's first read predate every window: not charged.
    first = book.read(identity="1@1", dropped=40, live={}, releases=["a", "b"])
    assert all(sum(t.buckets) == 0 for t in first.values())
    book.observe([b"not a kiln line"])
    totals = book.read(identity="1@1", dropped=43, live={}, releases=["a", "b"])
    assert totals["a"].buckets[-1] == totals["b"].buckets[-1] == 4
    assert book.lost == 4
    # After an HAProxy restart its DroppedLogs start again from 0.
    totals = book.read(identity="2@2", dropped=2, live={}, releases=["a"])
    assert totals["a"].buckets[-1] == 6 and totals["b"].buckets[-1] == 4


def test_the_book_keeps_a_bounded_number_of_old_releases() -> None:
    book = CountBook()
    for n in range(KEEP_RELEASES + 10):
        key = f"be_dev/s_{n}"
        book.declare({key: f"r{n}"})
        book.retire(key, counters(n + 1, 0, 0), identity="1@1")
    totals = book.read(identity="1@1", dropped=0, live={}, releases=["r0"])
    old = [f"r{n}" for n in range(KEEP_RELEASES + 10)]
    # The current release, then the most recently met others.
    assert list(totals) == ["r0", *old[-KEEP_RELEASES:]]
    assert totals["r0"].requests == 1
    assert set(book.owner.values()) == set(totals)


def test_the_book_survives_a_restart_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "counts.json"
    book = CountBook(path)
    book.declare({A1: "a"})
    book.observe([b"k1 be_dev s_a1 200 12"])
    before = book.read(identity="1@1", dropped=0, live={A1: counters(9, 1, 0)}, releases=["a"])
    again = CountBook(path)
    after = again.read(identity="1@1", dropped=0, live={A1: counters(9, 1, 0)}, releases=["a"])
    assert after == before


def test_a_read_only_book_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "counts.json"
    book = CountBook(path, writable=False)
    book.declare({A1: "a"})
    book.read(identity="1@1", dropped=0, live={A1: counters(1, 0, 0)}, releases=["a"])
    assert not path.exists()


def test_an_unreadable_book_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "counts.json"
    path.write_text('{"identity": 3}')
    with pytest.raises(ConfigError, match="unreadable"):
        CountBook(path)


def test_a_tally_round_trips_and_rejects_a_wrong_shape() -> None:
    tally = Tally(3, 1, 0, [1] * (len(LATENCY_BOUNDS) + 1), 0.25)
    assert Tally.from_json(tally.to_json()) == tally
    with pytest.raises(ValueError, match="wrong number of buckets"):
        Tally.from_json([1, 0, 0, [1, 2], 0.0])


def test_no_reader_starts_without_the_request_log_pipe(tmp_path: Path) -> None:
    # An HAProxy started before the request log existed: adopted, no histograms.
    log = LatencyLog(tmp_path / "missing.log", CountBook())
    assert not log.start() and not log.running
    log.close()


def test_a_reader_reads_whole_lines_from_the_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "requests.log"
    make_fifo(fifo)
    make_fifo(fifo)  # kept when it is there
    book = CountBook()
    book.declare({A1: "a"})
    log = LatencyLog(fifo, book)
    assert log.start()
    try:
        assert not LatencyLog(fifo, CountBook()).start()  # one reader at a time
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(writer, b"k1 be_dev s_a1 200 1\nk1 be_dev s_a1 20")
        os.write(writer, b"0 2\n")
        os.close(writer)
        deadline = time.monotonic() + 5
        while sum(book.latency.get(A1, Tally()).buckets) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        log.drain()
        assert sum(book.latency[A1].buckets) == 2 and book.malformed == 0
    finally:
        log.close()


def test_a_file_where_the_pipe_belongs_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "requests.log").write_text("")
    with pytest.raises(ConfigError, match="not a named pipe"):
        make_fifo(tmp_path / "requests.log")
