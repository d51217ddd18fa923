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
from kiln.core.runtime.model import INSTANCE, LABEL_ENV

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


@dataclass(frozen=True)
class Scan:
    ours: list[Process]
    impostors: list[Process]


def _raw_environ(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def scan(owner: str) -> Scan:
    """One pass over /proc: this owner's labelled processes, and impostors.

    Impostors carry all six kiln label variables but no owner marker at all.
    Requiring all six keeps a process that merely sets ``KILN_INSTANCE_ID`` (a
    hand-run example app) from being flagged. Processes of other owners (other
    state directories) are in neither list. Environments are only parsed when
    their raw bytes mention kiln, and everything but the marker and labels is
    dropped (the rest may hold secrets).
    """
    marker = f"{OWNER_ENV}=".encode()
    mine = marker + owner.encode() + b"\0"
    label = f"{LABEL_ENV[INSTANCE]}=".encode()
    me = str(os.getpid())
    ours: list[Process] = []
    others: list[Process] = []
    for name in os.listdir(PROC):  # noqa: PTH208 - hot path, strings are enough
        if not name.isdigit() or name == me:
            continue
        raw = _raw_environ(name)
        if label not in raw:
            continue
        raw += b"\0"
        is_ours = mine in raw
        if not is_ours and marker in raw:
            continue
        env = _parse(raw)
        if is_ours and env.get(OWNER_ENV) != owner:
            continue
        labels = labels_from_environment(env)
        if not is_ours and len(labels) < len(LABEL_ENV):
            continue
        info = stat(int(name))
        if info is None or not info.alive:
            continue
        process = Process(info.pid, info.start_time, info.session, owner if is_ours else "", labels)
        (ours if is_ours else others).append(process)
    return Scan(ours, others)


def _parse(raw: bytes) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def impostors() -> list[Process]:
    return scan("").impostors


def labelled_processes(owner: str) -> list[Process]:
    """Live processes whose environment says this owner made them."""
    return scan(owner).ours
