"""Which tar members an unpacker may create, decided before anything is written.

A layer is untrusted input even when kiln wrote it: a store can be tampered
with and a registry can serve anything. ``check_member`` refuses, with the
member's name in the message: absolute paths, ``..`` components, names that
are not UTF-8, whiteout files, device nodes and FIFOs, setuid/setgid bits,
symlinks whose target is absolute or resolves outside the tree, hardlinks to
anything but an earlier regular file of the tree, and expansion beyond a size
or entry limit. What passes is returned as a typed ``Member`` the unpacker
creates with fixed, read-only modes.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from enum import StrEnum

from kiln.errors import IntegrityError

MAX_UNPACKED_BYTES = 8 << 30
MAX_ENTRIES = 1_000_000


class MemberType(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"


@dataclass(frozen=True)
class RawMember:
    """What a tar header says, before any judgement (type as a tar typeflag)."""

    name: str
    typeflag: bytes
    mode: int
    size: int
    linkname: str


@dataclass(frozen=True)
class Member:
    path: str
    type: MemberType
    executable: bool
    size: int
    target: str = ""


@dataclass
class Budget:
    """Running totals of one unpack; ``charge`` refuses expansion beyond the limits."""

    max_bytes: int = MAX_UNPACKED_BYTES
    max_entries: int = MAX_ENTRIES
    bytes: int = 0
    entries: int = 0

    def charge(self, size: int, name: str) -> None:
        self.bytes += size
        self.entries += 1
        if self.bytes > self.max_bytes:
            raise IntegrityError(
                f"unpacking stops at {name!r}: the tree would exceed {self.max_bytes} bytes",
                hint="the artifact is larger than the unpack limit; raise it only if you trust it",
            )
        if self.entries > self.max_entries:
            raise IntegrityError(
                f"unpacking stops at {name!r}: more than {self.max_entries} entries"
            )


def _refuse(name: str, why: str) -> IntegrityError:
    return IntegrityError(f"unsafe layer member {name!r}: {why}", hint="do not run this artifact")


def normalise(name: str) -> str:
    """The member's path relative to the root, or a refusal."""
    if "\0" in name:
        raise _refuse(name, "NUL in the name")
    if name.startswith("/"):
        raise _refuse(name, "absolute path")
    parts = [p for p in name.split("/") if p not in {"", "."}]
    if ".." in parts:
        raise _refuse(name, "'..' in the path")
    if not parts:
        return ""
    if any(p.startswith(".wh.") for p in parts):
        raise _refuse(name, "whiteout files are not supported")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(name, "name is not UTF-8") from None
    return "/".join(parts)


def check_member(raw: RawMember, *, regular_files: set[str], budget: Budget) -> Member | None:
    """Judge one member; ``None`` means "nothing to create" (the root itself)."""
    path = normalise(raw.name)
    if raw.mode & 0o6000:
        raise _refuse(raw.name, "setuid or setgid bit set")
    executable = bool(raw.mode & 0o111)
    flag = raw.typeflag
    if flag in {b"0", b"\0", b"7"}:
        if not path:
            raise _refuse(raw.name, "a file cannot be the root")
        budget.charge(raw.size, raw.name)
        return Member(path, MemberType.FILE, executable, raw.size)
    if flag == b"5":
        budget.charge(0, raw.name)
        return Member(path, MemberType.DIR, True, 0) if path else None
    if flag == b"2":
        if not path:
            raise _refuse(raw.name, "the root cannot be a symlink")
        target = raw.linkname
        if not target or target.startswith("/"):
            raise _refuse(raw.name, f"symlink target {target!r} is absolute or empty")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if resolved == ".." or resolved.startswith("../"):
            raise _refuse(raw.name, f"symlink target {target!r} leaves the tree")
        budget.charge(0, raw.name)
        return Member(path, MemberType.SYMLINK, False, 0, target)
    if flag == b"1":
        target = normalise(raw.linkname)
        if target not in regular_files:
            raise _refuse(raw.name, f"hardlink to {raw.linkname!r}, not an earlier regular file")
        budget.charge(0, raw.name)
        return Member(path, MemberType.HARDLINK, executable, 0, target)
    if flag in {b"3", b"4"}:
        raise _refuse(raw.name, "device node")
    if flag == b"6":
        raise _refuse(raw.name, "FIFO")
    raise _refuse(raw.name, f"unsupported tar type {flag!r}")
