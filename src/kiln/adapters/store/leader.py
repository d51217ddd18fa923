"""Leadership per environment through ``flock`` on ``run/leader-<env>.lock``.

The kernel drops a ``flock`` when its holder's file descriptor closes, including
when the process is killed, so leadership can never be stranded by a crash.

The lock keeps no counter of its own: a term's epoch is one above the state
store's current term (``above``), and the store makes it durable when the
controller opens the term (``open_term`` refuses it if another holder opened
that epoch first). A ``flock`` passes only when its holder closes it, so a
holder that is merely paused keeps it; the stale holder fencing guards against
is one whose lock file was removed and re-created under it (a wiped run
directory), or two state directories pointed at one database by mistake.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from kiln.errors import ConfigError


class FileLeaderLock:
    def __init__(self, run_dir: Path) -> None:
        self._dir = run_dir
        self._fds: dict[str, int] = {}
        self._epochs: dict[str, int] = {}

    def try_acquire(self, environment: str, *, above: int = 0) -> bool:
        if environment in self._fds:
            return True
        path = self._dir / f"leader-{environment}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot open the leader lock {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fds[environment] = fd
        self._epochs[environment] = above + 1
        return True

    def epoch(self, environment: str) -> int | None:
        return self._epochs.get(environment) if environment in self._fds else None

    def release(self, environment: str) -> None:
        self._epochs.pop(environment, None)
        fd = self._fds.pop(environment, None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def held(self) -> frozenset[str]:
        return frozenset(self._fds)

    def close(self) -> None:
        for environment in list(self._fds):
            self.release(environment)
