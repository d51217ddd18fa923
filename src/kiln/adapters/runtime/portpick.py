"""Picking a free loopback port for a new instance.

Ports come from a range below the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``), so they never collide with the
source ports of outgoing connections or with servers that bind port 0. A
candidate is taken only if a test bind succeeds and no record of ours holds
it. Between the test bind and the app's own bind another program could take
the port; the app then fails to start, its readiness probe fails, and it is
replaced with a new port: a race costs a replacement, never a wrong route.
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
    low, high = port_range or default_range()
    chooser = rng or random.SystemRandom()
    for _ in range(attempts):
        port = chooser.randint(low, high)
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        return port
    raise Temporary(f"no free port on {host} in {low}-{high} after {attempts} tries", delay=1.0)
