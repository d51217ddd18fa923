"""Matching persisted instance records with live processes after a restart.

A controller that comes back finds two things: the records it wrote (pid, pid
start time, labels) and the processes running now. ``classify`` decides, with
no I/O:

- adopted: a live process has the recorded pid *and* start time *and* carries
  the recorded instance label. The start time defeats PID reuse: a recycled pid
  has a different start time, so the record is treated as gone.
- gone: the record's process no longer exists (or its pid was reused); the
  provider reports the instance dead and cleans up after it.
- orphans: process sessions whose members carry this provider's owner marker
  and kiln labels but that no adopted record leads. Each is reaped as a whole
  session (the instance and anything it forked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kiln.core.runtime.model import INSTANCE


@dataclass(frozen=True)
class Recorded:
    """What a record says about its process."""

    instance: str
    pid: int
    start_time: int


@dataclass(frozen=True)
class Process:
    """One live process as read from /proc: identity, session and kiln labels."""

    pid: int
    start_time: int
    session: int
    owner: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Orphan:
    session: int
    instance: str
    pids: tuple[int, ...]


@dataclass(frozen=True)
class Adoption:
    adopted: tuple[str, ...]
    gone: tuple[str, ...]
    orphans: tuple[Orphan, ...]


@dataclass(frozen=True)
class Recovery:
    """What a provider's ``recover()`` did: adopted, forgot (gone) and reaped."""

    adopted: tuple[str, ...]
    gone: tuple[str, ...]
    reaped: tuple[Orphan, ...]


def classify(records: Sequence[Recorded], processes: Sequence[Process], *, owner: str) -> Adoption:
    ours = [p for p in processes if p.owner == owner and INSTANCE in p.labels]
    by_pid = {p.pid: p for p in processes}
    adopted: list[str] = []
    gone: list[str] = []
    sessions: set[int] = set()
    for record in sorted(records, key=lambda r: r.instance):
        live = by_pid.get(record.pid)
        if (
            live is not None
            and live.start_time == record.start_time
            and live.labels.get(INSTANCE) == record.instance
        ):
            adopted.append(record.instance)
            sessions.add(live.session)
        else:
            gone.append(record.instance)
    leftovers: dict[int, list[Process]] = {}
    for process in ours:
        if process.session not in sessions:
            leftovers.setdefault(process.session, []).append(process)
    orphans = tuple(
        Orphan(
            session=session,
            instance=min(members, key=lambda p: p.pid).labels[INSTANCE],
            pids=tuple(sorted(p.pid for p in members)),
        )
        for session, members in sorted(leftovers.items())
    )
    return Adoption(adopted=tuple(adopted), gone=tuple(gone), orphans=orphans)
