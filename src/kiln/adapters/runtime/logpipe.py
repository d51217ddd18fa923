"""The per-instance log writer: stdin → ``PATH`` with size-based rotation.

Run as its own process (``python -S logpipe.py PATH MAX_BYTES BACKUPS``) in its
own session, reading the instance's stdout and stderr through a pipe, so logs
keep flowing and rotating while no controller runs. It exits when the last
writer closes the pipe (the instance and everything it forked have exited),
so it never outlives its instance. Standard library only, started with ``-S``:
it must start in milliseconds and depend on nothing.

Rotation: when the next write would push ``PATH`` past ``MAX_BYTES``, ``PATH.N``
becomes ``PATH.N+1`` (the oldest beyond ``BACKUPS`` is deleted), ``PATH``
becomes ``PATH.1`` and a new ``PATH`` is started. Reads are at most
``MAX_BYTES`` long, so no file is ever larger than the limit.
"""

from __future__ import annotations

import os
import signal
import sys


def rotate(path: str, backups: int) -> None:
    for index in range(backups, 0, -1):
        source = path if index == 1 else f"{path}.{index - 1}"
        if os.path.exists(source):  # noqa: PTH110
            os.replace(source, f"{path}.{index}")  # noqa: PTH105
    if backups == 0 and os.path.exists(path):  # noqa: PTH110
        os.unlink(path)  # noqa: PTH108


def run(path: str, max_bytes: int, backups: int) -> int:
    # A SIGTERM/SIGINT sent to the instance must not cut its last lines short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    size = os.fstat(out).st_size
    chunk = min(65536, max_bytes)
    while True:
        data = os.read(0, chunk)
        if not data:
            break
        if size and size + len(data) > max_bytes:
            os.close(out)
            rotate(path, backups)
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            size = 0
        os.write(out, data)
        size += len(data)
    os.close(out)
    return 0


def tail(path: str, lines: int, backups: int) -> list[str]:
    """The last ``lines`` lines across ``PATH.BACKUPS`` ... ``PATH.1``, ``PATH``.

    Files are joined before splitting, because rotation may cut a line in two.
    """
    if lines <= 0:
        return []
    data = b""
    for index in range(backups + 1):
        name = path if index == 0 else f"{path}.{index}"
        try:
            with open(name, "rb") as handle:
                data = handle.read() + data
        except OSError:
            continue
        if data.count(b"\n") > lines:
            break
    return data.decode("utf-8", "replace").splitlines()[-lines:]


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
