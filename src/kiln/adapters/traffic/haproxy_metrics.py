"""Per-release counters and latency histograms for the HAProxy router.

Two sources, one book:

- **Counters** come from ``show stat``, per server. HAProxy forgets a server's
  counters when it is deleted and all of them when it restarts, so the
  ``CountBook`` keeps, per release, what deleted servers had counted (``retire``,
  called by the adapter just before ``del server``) and, when the HAProxy
  process changes (its ``Pid``/``Start_time_sec``), the last counts read from the
  old one. A release's total is then what it retired plus what its live servers
  count now, and never goes backwards while the book lives (it is persisted, so
  a restarted controller continues it).
- **Latency** comes from HAProxy's request log. The generated config writes one
  line per request (``LOG_FORMAT``: backend, server, status, ``%Ta``) to a named
  pipe kiln creates, passed to HAProxy as a file descriptor. HAProxy writes it
  without blocking: when the pipe is full the line is lost and HAProxy counts it
  in ``DroppedLogs`` (``show info``). ``LatencyLog`` is the reader: a thread of
  the process that reads metrics (the controller), holding a lock file so two
  processes never split the lines. The pipe outlives the reader: lines written
  while no controller runs wait in it (1 MiB, about 30 000 requests).

A lost line never skews a figure silently: each line HAProxy reports dropped
(and each line that does not parse) is counted, as an observation of unknown
latency, in the overflow bucket of every release of the current table. Quantiles
can only move up from it, and one that falls in the overflow is "unknown"
(``LatencyHistogram.quantile`` returns None), which judges treat as
inconclusive. Drops that happened before the book's first read are not counted
anywhere: no judge's window reaches back before its first reading.

HAProxy's timers are whole milliseconds: ``%Ta = v`` means a duration in
``[v, v+1)`` ms, counted in the bucket of ``v+1`` ms, an upper bound (the 0.5 ms
bucket stays empty under HAProxy). The sum uses the middle, ``v+0.5`` ms.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import stat
import threading
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kiln.core.traffic.metrics import LATENCY_BOUNDS, LatencyHistogram, ReleaseMetrics
from kiln.errors import ConfigError
from kiln.fsio import write_atomic

# One line per request: a version tag, then fields without spaces (HAProxy's backend
# and server names never hold one). %ST is the status sent to the client, %Ta the
# request's active time (first request byte to last response byte), in ms.
LOG_FORMAT = "k1 %b %s %ST %Ta"
LOG_FD = 9  # the descriptor HAProxy inherits the pipe on (``log fd@9``)
PIPE_SIZE = 1 << 20
KEEP_RELEASES = 32  # releases no longer in the table whose totals the book keeps
BATCH_SECONDS = 0.02  # at 40k req/s, 800 lines (~30 KB) wait in the pipe between reads
_BUCKETS = len(LATENCY_BOUNDS) + 1


def bucket_of(milliseconds: int) -> int:
    """The histogram bucket of a whole-millisecond HAProxy timer (upper bound v+1 ms)."""
    return bisect_left(LATENCY_BOUNDS, (milliseconds + 1) / 1000)


@dataclass
class Tally:
    """Counters and a latency histogram, for one server or one release."""

    requests: int = 0
    responses_5xx: int = 0
    connect_failures: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * _BUCKETS)
    latency_sum: float = 0.0

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.responses_5xx += other.responses_5xx
        self.connect_failures += other.connect_failures
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.latency_sum += other.latency_sum

    def copy(self) -> Tally:
        return Tally(
            self.requests,
            self.responses_5xx,
            self.connect_failures,
            list(self.buckets),
            self.latency_sum,
        )

    def metrics(self, release: str) -> ReleaseMetrics:
        return ReleaseMetrics(
            release,
            self.requests,
            self.responses_5xx,
            self.connect_failures,
            LatencyHistogram(LATENCY_BOUNDS, tuple(self.buckets), self.latency_sum),
        )

    def to_json(self) -> list[object]:
        return [
            self.requests,
            self.responses_5xx,
            self.connect_failures,
            self.buckets,
            self.latency_sum,
        ]

    @classmethod
    def from_json(cls, raw: object) -> Tally:
        if not isinstance(raw, list) or len(raw) != 5:
            raise ValueError(f"not a tally: {raw!r}")
        requests, e5, conn, buckets, total = raw
        if not isinstance(buckets, list) or len(buckets) != _BUCKETS:
            raise ValueError("a tally's histogram has the wrong number of buckets")
        return cls(int(requests), int(e5), int(conn), [int(b) for b in buckets], float(total))


def counters(requests: int, responses_5xx: int, connect_failures: int) -> Tally:
    return Tally(requests, responses_5xx, connect_failures)


class CountBook:
    """What the HAProxy router remembers between reads (see the module docstring).

    Keys are ``backend/server``. Thread-safe: the log reader adds lines while the
    controller reads. ``path`` None keeps it in memory only; ``writable`` False
    reads a book another process (the controller) keeps, without ever writing it.
    """

    def __init__(self, path: Path | None = None, *, writable: bool = True) -> None:
        self.path = path
        self.writable = writable
        self.lock = threading.Lock()
        self.identity: str | None = None  # the HAProxy process the live counts belong to
        self.dropped_seen: int | None = None  # DroppedLogs at the last read
        self.malformed = 0  # log lines that did not parse (counted like drops)
        self.malformed_seen = 0
        self.lost = 0  # lines lost since the book started (dropped + malformed)
        self.owner: dict[str, str] = {}  # key -> release, as last declared
        self.live: dict[str, Tally] = {}  # key -> counters last read from show stat
        self.latency: dict[str, Tally] = {}  # key -> histogram from the log
        self.retired: dict[str, Tally] = {}  # release -> what deleted servers counted
        self._load()

    # The log reader's side.

    def observe(self, lines: list[bytes]) -> None:
        """Add request log lines (``LOG_FORMAT``) to their servers' histograms.

        Lines repeat (a few servers, statuses and milliseconds), so identical ones
        are counted first, in C, and each distinct line is parsed once."""
        with self.lock:
            for line, times in Counter(lines).items():
                parts = line.split()
                if len(parts) != 5 or parts[0] != b"k1":
                    self.malformed += times
                    continue
                try:
                    status, ms = int(parts[3]), int(parts[4])
                except ValueError:
                    self.malformed += times
                    continue
                if not 100 <= status <= 599 or ms < 0 or parts[2] == b"<NOSRV>":
                    continue  # no server answered: show stat counts no response either
                key = f"{parts[1].decode(errors='replace')}/{parts[2].decode(errors='replace')}"
                tally = self.latency.get(key)
                if tally is None:
                    tally = self.latency[key] = Tally()
                tally.buckets[bucket_of(ms)] += times
                tally.latency_sum += (ms + 0.5) / 1000 * times

    # The router's side.

    def declare(self, owners: dict[str, str]) -> None:
        """Remember which release each server of a table belongs to."""
        with self.lock:
            self.owner.update(owners)

    def retire(self, key: str, final: Tally, *, identity: str) -> None:
        """A server of HAProxy ``identity`` is being deleted: keep its final counts and
        its histogram in its release."""
        with self.lock:
            self._switch(identity, None)
            self.live.pop(key, None)
            self._keep(key, final)
            histogram = self.latency.pop(key, None)
            if histogram is not None:
                self._keep(key, histogram)
        self.save()

    def _switch(self, identity: str, dropped: int | None) -> None:
        """Another HAProxy process answers: keep what the last one had counted."""
        if identity == self.identity:
            return
        if self.identity is not None:  # HAProxy restarted: its own counts are gone
            for key, tally in self.live.items():
                self._keep(key, tally)
            self.dropped_seen = 0
        else:  # the book's first read: earlier drops predate every judge's window
            self.dropped_seen = dropped
        self.live = {}
        self.identity = identity

    def read(
        self,
        *,
        identity: str,
        dropped: int,
        live: dict[str, Tally],
        releases: list[str],
    ) -> dict[str, Tally]:
        """Per-release totals from one read of HAProxy (``show info`` + ``show stat``).

        ``live`` holds the counters of the servers HAProxy has now; ``releases``
        the current table's releases (which lost lines are charged to).
        """
        with self.lock:
            self._switch(identity, dropped)
            if self.dropped_seen is None:
                self.dropped_seen = dropped
            for key, tally in live.items():
                if key in self.owner:
                    self.live[key] = tally
            for key in [k for k in self.latency if k not in live]:
                self._keep(key, self.latency.pop(key))  # late lines of a deleted server
            lost = max(0, dropped - (self.dropped_seen or 0))
            lost += self.malformed - self.malformed_seen
            self.dropped_seen, self.malformed_seen = dropped, self.malformed
            if lost:
                self.lost += lost
                for release in releases:
                    self.retired.setdefault(release, Tally()).buckets[-1] += lost
            self._forget(releases, live)
            totals = {release: tally.copy() for release, tally in self.retired.items()}
            for source in (self.live, self.latency):
                for key, tally in source.items():
                    owner = self.owner.get(key)
                    if owner is not None:
                        totals.setdefault(owner, Tally()).add(tally)
        self.save()
        return totals

    def _forget(self, releases: list[str], live: dict[str, Tally]) -> None:
        """Bound the book: keep the current releases and the ``KEEP_RELEASES`` others
        the book met last (no judge reads a release that left the table long ago),
        and the servers of those releases."""
        current = set(releases)
        others = [r for r in self.retired if r not in current]
        for release in others[: max(0, len(others) - KEEP_RELEASES)]:
            del self.retired[release]
        kept = current | set(self.retired)
        for key in [k for k, r in self.owner.items() if r not in kept and k not in live]:
            del self.owner[key]

    def _keep(self, key: str, tally: Tally) -> None:
        release = self.owner.get(key)
        if release is not None:
            self.retired.setdefault(release, Tally()).add(tally)

    # Persistence.

    def save(self) -> None:
        if self.path is None or not self.writable:
            return
        with self.lock:
            body = {
                "identity": self.identity,
                "dropped_seen": self.dropped_seen,
                "lost": self.lost,
                "owner": self.owner,
                "live": {k: t.to_json() for k, t in self.live.items()},
                "latency": {k: t.to_json() for k, t in self.latency.items()},
                "retired": {k: t.to_json() for k, t in self.retired.items()},
            }
        write_atomic(self.path, json.dumps(body, sort_keys=True).encode(), mode=0o600)

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            raw = json.loads(self.path.read_bytes())
            identity = raw["identity"]
            dropped = raw["dropped_seen"]
            self.identity = None if identity is None else str(identity)
            self.dropped_seen = None if dropped is None else int(dropped)
            self.lost = int(raw["lost"])
            self.owner = {str(k): str(v) for k, v in raw["owner"].items()}
            self.live = {str(k): Tally.from_json(v) for k, v in raw["live"].items()}
            self.latency = {str(k): Tally.from_json(v) for k, v in raw["latency"].items()}
            self.retired = {str(k): Tally.from_json(v) for k, v in raw["retired"].items()}
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"the HAProxy counts file {self.path} is unreadable: {exc}",
                hint="delete it: counters then start again from HAProxy's own",
            ) from exc


def make_fifo(path: Path) -> None:
    """Create the request-log pipe (mode 0600), or keep the one that is there."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        os.mkfifo(path, 0o600)
        return
    if not stat.S_ISFIFO(mode):
        raise ConfigError(
            f"{path} exists and is not a named pipe",
            hint="remove it; kiln creates the HAProxy request-log pipe there",
        )


# Run as ``python -c EXEC_WITH_FIFO FIFO FD SIZE BINARY ARGS...``: opens the pipe
# read-write (so HAProxy never gets EPIPE while no reader is open), sets its size
# (the kernel allows an unprivileged process up to 1 MiB), puts it on descriptor FD,
# then becomes BINARY (same PID).
EXEC_WITH_FIFO = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR)\n"
    "try:\n"
    "    fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, int(sys.argv[3]))\n"
    "except OSError:\n"
    "    pass\n"
    "os.dup2(fd, int(sys.argv[2]))\n"
    "os.execv(sys.argv[4], sys.argv[4:])\n"
)


class LatencyLog:
    """Reads the request-log pipe into a ``CountBook`` on a daemon thread.

    ``start`` returns False when another process holds the reader lock (it reads
    the lines; this one must not split them). Idempotent.
    """

    def __init__(self, fifo: Path, book: CountBook) -> None:
        self.fifo = fifo
        self.book = book
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reading = threading.Lock()
        self._partial = b""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        if self.running:
            return True
        lock_path = self.fifo.with_name(self.fifo.name + ".lock")
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            return False
        try:
            # Read-write: a FIFO with no writer left would otherwise poll as hung up.
            fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        except FileNotFoundError:  # an HAProxy started without the request log
            os.close(lock_fd)
            return False
        except OSError:
            os.close(lock_fd)
            raise
        self._fd, self._lock_fd = fd, lock_fd
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(fd,), name="haproxy-log", daemon=True
        )
        self._thread.start()
        return True

    def _run(self, fd: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not self._stop.is_set():
            if poller.poll(200):
                self.drain()
                # Read in batches: a wake-up per line would cost more than the lines.
                self._stop.wait(BATCH_SECONDS)

    def drain(self) -> None:
        """Read every line in the pipe now (the thread's work; a caller may run it
        to take in the lines written so far)."""
        with self._reading:
            if self._fd is None:
                return
            while True:
                try:
                    data = os.read(self._fd, PIPE_SIZE)
                except BlockingIOError:
                    return
                lines = (self._partial + data).split(b"\n")
                self._partial = lines.pop()
                if lines:
                    self.book.observe(lines)
                if len(data) < PIPE_SIZE:
                    return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._reading:
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._fd = self._lock_fd = None
