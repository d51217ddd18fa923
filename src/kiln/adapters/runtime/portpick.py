"""Picking a free loopback port for a new instance.

Ports come from a range below the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``), so they never collide with the
source ports of outgoing connections or with servers that bind port 0. A
candidate is taken only if a test bind succeeds and no record of ours holds
it. Between the test bind and the app's own bind another program could take
the port; the app then fails to start, its readiness probe fails, and it is
replaced with a new port: a race costs a replacement, never a wrong route.
``listen`` has no such race: it keeps the bound socket and listens on it, for
a provider that passes the socket to the app (the network-isolated sandbox).
"""

from __future__ import annotations

import random
import socket
from collections.abc import Collection
from pathlib import Path

from kiln.errors import Temporary

DEFAULT_RANGE = (20000, 32000)


def default_range() -> tuple[int, int]:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_RANGE
    start, end = DEFAULT_RANGE
    return (start, min(end, low - 1)) if low - 1 > start + 1000 else DEFAULT_RANGE


def pick(
    host: str,
    *,
    taken: Collection[int],
    port_range: tuple[int, int] | None = None,
    attempts: int = 200,
    rng: random.Random | None = None,
) -> int:
    """A free port, tested by a bind and released again: the app binds it itself."""
    with bind(host, taken=taken, port_range=port_range, attempts=attempts, rng=rng) as sock:
        return int(sock.getsockname()[1])


def listen(
    host: str,
    *,
    taken: Collection[int],
    port_range: tuple[int, int] | None = None,
    backlog: int = 1024,
) -> socket.socket:
    """A socket listening on a free port, to pass to an app (no race: it is never let go)."""
    sock = bind(host, taken=taken, port_range=port_range, reuse=True)
    try:
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def bind(
    host: str,
    *,
    taken: Collection[int],
    port_range: tuple[int, int] | None = None,
    attempts: int = 200,
    rng: random.Random | None = None,
    reuse: bool = False,
) -> socket.socket:
    """A TCP socket bound to a free port of the range that no record of ours holds."""
    low, high = port_range or default_range()
    chooser = rng or random.SystemRandom()
    for _ in range(attempts):
        port = chooser.randint(low, high)
        if port in taken:
            continue
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            continue
        return sock
    raise Temporary(f"no free port on {host} in {low}-{high} after {attempts} tries", delay=1.0)
