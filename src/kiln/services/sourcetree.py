"""Reading a build context: which entries go in a layer, validated before any write.

``scan`` walks a directory once (``os.scandir``, never following symlinks),
applies the include/exclude selection, and refuses with a clear error: names
that are not UTF-8, symlinks that are absolute or leave the context, sockets,
FIFOs and devices, unreadable directories, and files over the size limit. It
returns sorted ``SourceEntry``s with their parents. ``copy_file`` streams one
file's bytes and refuses a file that changed while it was read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from kiln.core.artifacts.selection import Selection
from kiln.core.artifacts.tarformat import Entry, Kind
from kiln.errors import InvalidInput

_READ = 1 << 20


class SourceEntry(NamedTuple):
    """One entry of a layer and where its bytes come from (a tuple: one per file)."""

    entry: Entry
    path: str | None = None  # None for directories
    stat_key: tuple[int, ...] = ()
    mtime_ns: int = 0


def scan(
    root_dir: Path,
    selection: Selection,
    *,
    max_file_bytes: int,
    racy_before_ns: int,
    root: str,
    directories: dict[str, os.stat_result] | None = None,
) -> list[SourceEntry]:
    """Every selected entry under ``root_dir``, validated, sorted, with parents.

    The loop body runs once per file of trees with tens of thousands of files,
    so it stays lean: string paths, one ``lstat`` (from ``scandir``), tuples.
    ``directories``, if given, receives the lstat of every directory walked
    (``""`` for ``root_dir``), for the scan index's shape check.
    """
    if directories is not None:
        directories[""] = os.lstat(root_dir)
    found: list[SourceEntry] = []
    used_dirs: set[str] = set()
    stack = [""]
    base = str(root_dir)
    prefix = root + "/"
    # Locals instead of attribute lookups: this loop is the floor of every rebuild.
    selects, append, is_dir, is_reg = selection.selects, found.append, stat.S_ISDIR, stat.S_ISREG
    file_kind = Kind.FILE
    while stack:
        rel_dir = stack.pop()
        directory = f"{base}/{rel_dir}" if rel_dir else base
        head = rel_dir + "/" if rel_dir else ""
        try:
            with os.scandir(directory) as it:
                items = list(it)
        except PermissionError:
            raise InvalidInput(
                f"cannot read the directory {directory}: permission denied",
                hint="fix its permissions, or leave it out with build.exclude",
            ) from None
        except FileNotFoundError:
            raise InvalidInput(f"{directory} disappeared while kiln was reading it") from None
        for item in items:
            name = item.name
            rel = head + name
            if not name.isascii():
                _check_name(rel, root_dir)
            st = item.stat(follow_symlinks=False)
            mode = st.st_mode
            if is_dir(mode):
                if not selection.prunes(rel):
                    stack.append(rel)
                    if directories is not None:
                        directories[rel] = st
                continue
            if not selects(rel):
                continue
            if is_reg(mode) and st.st_size <= max_file_bytes:
                mtime = st.st_mtime_ns
                entry = Entry(prefix + rel, file_kind, bool(mode & 0o111), st.st_size)
                append(SourceEntry(entry, item.path, fingerprint(st, racy_before_ns), mtime))
            else:
                append(
                    describe(
                        root_dir,
                        rel,
                        st,
                        max_file_bytes=max_file_bytes,
                        racy_before_ns=racy_before_ns,
                        root=root,
                    )
                )
            used_dirs.add(rel_dir)
    dirs: set[str] = set()
    for rel_dir in used_dirs:
        while rel_dir and rel_dir not in dirs:
            dirs.add(rel_dir)
            rel_dir = rel_dir.rpartition("/")[0]
    if found:
        found.append(SourceEntry(Entry(root, Kind.DIR)))
    found.extend(SourceEntry(Entry(prefix + d, Kind.DIR)) for d in dirs)
    found.sort()  # by path: the first field of the first field, unique
    return found


def fingerprint(st: os.stat_result, racy_before_ns: int) -> tuple[int, ...]:
    """What the build cache and the scan index key a file on; ``()`` = never trust it.

    A file modified at or after ``racy_before_ns`` is too fresh to trust (git's
    "racy clean" problem: a second write in the same timestamp tick is unseen).
    """
    mtime = st.st_mtime_ns
    if mtime >= racy_before_ns:
        return ()
    return (st.st_size, mtime, st.st_ctime_ns, st.st_mode, st.st_ino, st.st_dev)


def describe(
    root_dir: Path,
    rel: str,
    st: os.stat_result,
    *,
    max_file_bytes: int,
    racy_before_ns: int,
    root: str,
) -> SourceEntry:
    """The layer entry of the non-directory ``rel`` (lstat ``st``), validated like ``scan``."""
    mode = st.st_mode
    path = f"{root_dir}/{rel}"
    if stat.S_ISREG(mode):
        if st.st_size > max_file_bytes:
            raise InvalidInput(
                f"{root_dir / rel} is {st.st_size} bytes, over the {max_file_bytes}-byte "
                "limit for one file",
                hint="leave it out with build.exclude; large data belongs outside images",
            )
        entry = Entry(f"{root}/{rel}", Kind.FILE, bool(mode & 0o111), st.st_size)
    elif stat.S_ISLNK(mode):
        link = os.readlink(path)  # noqa: PTH115 - str paths, as in scan
        _check_link(rel, link, root_dir)
        entry = Entry(f"{root}/{rel}", Kind.SYMLINK, linkname=link)
    else:
        raise InvalidInput(
            f"{root_dir / rel} is not a regular file, directory or symlink",
            hint="sockets, FIFOs and devices cannot go in an artifact; exclude it",
        )
    return SourceEntry(entry, path, fingerprint(st, racy_before_ns), st.st_mtime_ns)


def _check_name(rel: str, root_dir: Path) -> None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = rel.encode("utf-8", "surrogateescape")
        raise InvalidInput(
            f"{root_dir}: the file name {shown!r} is not valid UTF-8",
            hint="rename it (kiln puts only UTF-8 names in artifacts) or exclude it",
        ) from None


def _check_link(rel: str, link: str, root_dir: Path) -> None:
    if link.startswith("/"):
        raise InvalidInput(
            f"the symlink {root_dir / rel} points at the absolute path {link}",
            hint="use a relative link inside the build context, or exclude the link",
        )
    depth = 0
    for part in [*rel.split("/")[:-1], *link.split("/")]:
        if part == "..":
            depth -= 1
        elif part not in {"", "."}:
            depth += 1
        if depth < 0:
            raise InvalidInput(
                f"the symlink {root_dir / rel} -> {link} leaves the build context",
                hint="copy the target into the context, or exclude the link",
            )


def copy_file(source: SourceEntry, write: Callable[[bytes | memoryview], None]) -> None:
    path = source.path
    if path is None:
        raise TypeError("a file entry without a source path")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except PermissionError:
        raise InvalidInput(
            f"cannot read {path}: permission denied",
            hint="fix its permissions, or leave it out with build.exclude",
        ) from None
    except FileNotFoundError:
        raise InvalidInput(f"{path} disappeared during the build", hint="build again") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        remaining = source.entry.size
        while remaining > 0:
            data = os.read(fd, min(remaining, _READ))
            if not data:
                break
            write(data)
            remaining -= len(data)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if remaining or after.st_size != source.entry.size or after.st_mtime_ns != source.mtime_ns:
        raise InvalidInput(
            f"{path} changed while kiln was reading it",
            hint="stop whatever is writing to the source tree, then build again",
        )
