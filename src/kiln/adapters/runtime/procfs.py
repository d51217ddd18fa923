"""Reading /proc: process identity (pid + start time), session, environment.

The start time (field 22 of ``/proc/PID/stat``, clock ticks since boot) is what
makes a pid an identity: the kernel recycles pids, but a recycled pid belongs
to a process with a later start time. ``comm`` (field 2) may contain spaces and
parentheses, so fields are counted from the *last* ``)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kiln.core.runtime.adoption import Process
from kiln.core.runtime.launch import OWNER_ENV, labels_from_environment
from kiln.core.runtime.model import LABEL_ENV

PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    pid: int
    state: str
    session: int
    start_time: int

    @property
    def alive(self) -> bool:
        """Zombies (Z) and dead (X) processes have exited; only their entry remains."""
        return self.state not in {"Z", "X"}


def stat(pid: int) -> Stat | None:
    try:
        raw = (PROC / str(pid) / "stat").read_bytes().decode("ascii", "replace")
    except OSError:
        return None
    after = raw[raw.rfind(")") + 2 :].split()
    # after[0] is field 3 (state); field N is after[N - 3].
    try:
        return Stat(pid=pid, state=after[0], session=int(after[3]), start_time=int(after[19]))
    except (IndexError, ValueError):
        return None


def is_running(pid: int, start_time: int) -> bool:
    """True when ``pid`` is alive *and* is the same process that started at ``start_time``."""
    info = stat(pid)
    return info is not None and info.alive and info.start_time == start_time


def comm(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def environ(pid: int) -> dict[str, str] | None:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            env[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def impostors() -> list[Process]:
    """Live processes carrying all six kiln label variables but no owner marker.

    All six are required so that a process that merely sets
    ``KILN_INSTANCE_ID`` (as a hand-run example app might) is not flagged.
    """
    found: list[Process] = []
    me = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        env = environ(pid)
        if not env or OWNER_ENV in env:
            continue
        labels = labels_from_environment(env)
        if len(labels) < len(LABEL_ENV):
            continue
        info = stat(pid)
        if info is not None and info.alive:
            found.append(Process(pid, info.start_time, info.session, "", labels))
    return found


def labelled_processes(owner: str) -> list[Process]:
    """Live processes whose environment says this owner made them.

    Only the owner marker and the kiln label variables are kept; the rest of the
    environment (which may hold secrets) is dropped here and never stored.
    """
    found: list[Process] = []
    me = os.getpid()
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        env = environ(pid)
        if not env or env.get(OWNER_ENV) != owner:
            continue
        info = stat(pid)
        if info is None or not info.alive:
            continue
        found.append(
            Process(
                pid=pid,
                start_time=info.start_time,
                session=info.session,
                owner=owner,
                labels=labels_from_environment(env),
            )
        )
    return found
