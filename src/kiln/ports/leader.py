"""The ``LeaderLock`` port: one controller drives an environment at a time.

SQLite deployments use a file lock (``kiln.adapters.store.leader``); PostgreSQL
deployments use an advisory lock. Both are released when their holder dies, so a
crashed controller never blocks its successor.
"""

from __future__ import annotations

from typing import Protocol


class LeaderLock(Protocol):
    def try_acquire(self, environment: str) -> bool:
        """Become the leader of ``environment`` if nobody is; True when we hold it."""
        ...

    def release(self, environment: str) -> None: ...

    def held(self) -> frozenset[str]: ...


class ClosableLeaderLock(LeaderLock, Protocol):
    """A lock the process that made it closes when it stops leading altogether."""

    def close(self) -> None: ...
