"""The ``LeaderLock`` port: one controller drives an environment at a time.

SQLite deployments use a file lock (``kiln.adapters.store.leader``); PostgreSQL
deployments use an advisory lock. Both are released when their holder dies, so a
crashed controller never blocks its successor.

A lock alone cannot stop a holder that was paused (SIGSTOP, a long GC, a
frozen VM) or lost its lock without noticing from acting on stale beliefs. So
each acquisition is also a *term* with an epoch, a fencing token strictly
above every earlier term's: the controller opens the term in the state store
(``DesiredState.open_term``) and every write it makes carries the epoch, which
the store refuses once a newer term exists (docs/controller.md, "Fencing").
"""

from __future__ import annotations

from typing import Protocol


class LeaderLock(Protocol):
    def try_acquire(self, environment: str, *, above: int = 0) -> bool:
        """Become the leader of ``environment`` if nobody is; True when we hold it.

        A new acquisition starts a term whose epoch is greater than ``above`` (the
        store's current term) and than any epoch this lock issued before."""
        ...

    def epoch(self, environment: str) -> int | None:
        """The epoch of the term we hold for ``environment``; None when not held."""
        ...

    def release(self, environment: str) -> None: ...

    def held(self) -> frozenset[str]: ...


class ClosableLeaderLock(LeaderLock, Protocol):
    """A lock the process that made it closes when it stops leading altogether."""

    def close(self) -> None: ...
