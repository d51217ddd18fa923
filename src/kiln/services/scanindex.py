"""The scan index: what the last build of a context saw, so a rebuild reads only what changed.

git keeps an index of (path → stat data, blob id) so ``git status`` can tell
an unchanged file from its metadata alone. kiln keeps the same kind of record
per build context (``<cache>/index/<key>.bin``):

* for every selected file, grouped by directory: its stat fingerprint
  (size, mtime_ns, ctime_ns, mode, inode, device packed into 48 bytes; empty
  when it was too fresh to trust);
* for every application layer: its members (paths in order, one string) and
  the layer digest, size and entry count it produced;
* the layer mtime (epoch) those digests were made with;
* for every directory walked: its mtime, ctime, inode and device (adding,
  removing or renaming a name changes its directory's mtime);
* in a git work tree: the commit C0 compared against when the index was made,
  and the files git cannot vouch for against C0 (untracked, ignored, differing
  from C0, or written while the index was made), plus every file a rebuild
  found changed since.

Layers are contiguous runs of the sorted paths, so the layer holding a file
is found by bisecting the layers' first paths; the index stores no per-file
layer number. Loading it creates one small bytes object per file, nothing more.

Two ways to find what changed, both answering ``None`` when the *shape* of
the tree changed (a selected file added, removed or turned into a directory:
layer boundaries may have moved, so the builder does a full scan):

* ``git_changes``: when no directory changed, the only candidates are the
  files git reports as differing from C0 now, and the recorded files git could
  not vouch for; only those are ``lstat``-ed. git's own stat check runs in C
  on several threads, with kiln's strict settings (``GitRepo.diff_work_tree``).
  A tracked file that git finds identical to C0 and that was identical to C0
  when indexed has the same bytes and executable bit as when it was indexed.
* ``changes``: one ``lstat`` per file and no other per-file work for a file
  whose fingerprint matches. Used outside git, or when git cannot vouch
  (assume-unchanged or skip-worktree entries, submodules, attributes), or when
  a directory changed (the walk then refreshes the directory records).

Layers holding no changed file are reused as they are; only the layers
holding a change are re-read and re-hashed.

The index is a cache: it lives in kiln's 0700 state directory, carries a
SHA-256 of its own bytes (a torn or edited file is ignored, never trusted),
and losing it costs one full scan. It is ``marshal`` data, so its key includes
the interpreter version along with every parameter of the layout (format,
context, selection, limits, layer split).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import struct
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.core.artifacts.selection import Selection
from kiln.core.artifacts.tarformat import Kind
from kiln.ports.artifacts import WorkTreeDiff
from kiln.services.sourcetree import SourceEntry

VERSION = 3
_PACK = struct.Struct("<qqqQQQ").pack  # size, mtime_ns, ctime_ns, mode, inode, device
_PACK_DIR = struct.Struct("<qqQQ").pack  # mtime_ns, ctime_ns, inode, device
_ATTRIBUTES = ".gitattributes"
# (digest, size, entries) of one application layer
LayerFacts = tuple[str, int, int]


def packed(key: tuple[int, ...]) -> bytes:
    """A scan fingerprint (``SourceEntry.stat_key``) as the index stores it."""
    return _PACK(*key) if key else b""


def dir_key(st: os.stat_result, racy_before_ns: int) -> bytes:
    """A directory's record; empty (never matches) while it is too fresh to trust."""
    if st.st_mtime_ns >= racy_before_ns:
        return b""
    return _PACK_DIR(st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


@dataclass
class Index:
    epoch: int
    # rel_dir ("" for the top) → file name → packed fingerprint
    dirs: dict[str, dict[str, bytes]]
    # per layer: its members ("\0"-joined paths inside the image, directories
    # ending in "/"), and its facts
    layers: list[tuple[str, LayerFacts]]
    files: int
    # every directory walked (rel_dir → dir_key)
    walked: dict[str, bytes]
    # (C0, files git cannot vouch for against C0), or None outside git
    git: tuple[str, set[str]] | None = None

    def paths(self) -> list[str]:
        """Every indexed file, relative to the context."""
        return [f"{d}/{n}" if d else n for d, names in self.dirs.items() for n in names]

    def layer_of(self, path: str) -> int:
        """The layer holding ``path`` (a path inside the image): bisect the first paths."""
        firsts = [members.partition("\0")[0].rstrip("/") for members, _ in self.layers]
        return max(0, bisect_right(firsts, path) - 1)

    def members(self, number: int) -> list[tuple[str, bool]]:
        """Layer ``number``'s entries, in order: (path inside the image, is a directory)."""
        rows = self.layers[number][0].split("\0")
        return [(p[:-1], True) if p.endswith("/") else (p, False) for p in rows if p]


@dataclass(frozen=True)
class Changed:
    rel: str
    st: os.stat_result


def build_index(
    epoch: int,
    layers: Sequence[Sequence[SourceEntry]],
    facts: Sequence[LayerFacts],
    *,
    root: str,
    root_dir: Path | None = None,
    walked: dict[str, os.stat_result] | None = None,
    racy_before_ns: int = 0,
    view: WorkTreeDiff | None = None,
    view_started_ns: int = 0,
) -> Index:
    """The index of a full build: ``layers`` as split, ``facts`` the layer each produced.

    ``walked``: the directories the scan walked under ``root_dir``. ``view``:
    git's diff against HEAD taken *before* the scan began (at
    ``view_started_ns``); a file whose ctime is later than that may have
    changed after git looked, so it is recorded as one git cannot vouch for.
    An attributes file in any walked directory (tracked or not: it may filter
    what git compares) keeps git out of it.
    """
    skip = len(root) + 1
    dirs: dict[str, dict[str, bytes]] = {}
    members: list[str] = []
    files = 0
    for chunk in layers:
        row: list[str] = []
        for source in chunk:
            entry = source.entry
            if entry.kind is Kind.DIR:
                row.append(entry.path + "/")
                continue
            row.append(entry.path)
            directory, _, name = entry.path[skip:].rpartition("/")
            dirs.setdefault(directory, {})[name] = packed(source.stat_key)
            files += 1
        members.append("\0".join(row))
    keys = {rel: dir_key(st, racy_before_ns) for rel, st in (walked or {}).items()}
    git: tuple[str, set[str]] | None = None
    base = str(root_dir)
    attributes = any(
        os.path.lexists(f"{base}/{rel}/{_ATTRIBUTES}" if rel else f"{base}/{_ATTRIBUTES}")
        for rel in walked or {}
    )
    if view is not None and walked is not None and not attributes:
        clean = view.tracked - view.differing
        since = view_started_ns - 2 * 10**9  # ctime is a coarse clock: allow for it
        unvouched: set[str] = set()
        for chunk in layers:
            for source in chunk:
                if source.entry.kind is Kind.DIR:
                    continue
                rel = source.entry.path[skip:]
                key = source.stat_key
                if rel not in clean or not key or key[2] >= since:
                    unvouched.add(rel)
        git = (view.revision, unvouched)
    return Index(epoch, dirs, list(zip(members, facts, strict=True)), files, keys, git)


def changes(
    root_dir: Path, index: Index, selection: Selection, *, racy_before_ns: int
) -> list[Changed] | None:
    """Indexed files whose fingerprint differs now, or None if the set of files changed.

    Untrustworthy entries (a fingerprint of ``()`` then or now) count as changed.
    Any surprise (a directory vanished, permission denied) answers None, and
    the full scan that follows reports it properly. Refreshes ``index.walked``.
    """
    dirs = index.dirs
    empty: dict[str, bytes] = {}
    found: list[Changed] = []
    matched = 0
    stack = [""]
    base = str(root_dir)
    selects, prunes, is_dir, pack = selection.selects, selection.prunes, stat.S_ISDIR, _PACK
    walked: dict[str, bytes] = {}
    try:
        walked[""] = dir_key(os.lstat(base), racy_before_ns)
    except OSError:
        return None
    while stack:
        rel_dir = stack.pop()
        known = dirs.get(rel_dir, empty)
        head = rel_dir + "/" if rel_dir else ""
        try:
            with os.scandir(f"{base}/{rel_dir}" if rel_dir else base) as it:
                items = list(it)
            for item in items:
                name = item.name
                old = known.get(name)
                if name == _ATTRIBUTES:
                    index.git = None  # attributes may filter content: git cannot vouch
                if old is None:
                    if item.is_dir(follow_symlinks=False):
                        if not prunes(head + name):
                            stack.append(head + name)
                            walked[head + name] = dir_key(
                                item.stat(follow_symlinks=False), racy_before_ns
                            )
                    elif selects(head + name):
                        return None  # a new file: layer boundaries may move
                    continue
                st = item.stat(follow_symlinks=False)
                if is_dir(st.st_mode):
                    return None  # a file became a directory
                matched += 1
                # the same rule and fields as sourcetree.fingerprint, inlined (hot loop)
                mtime = st.st_mtime_ns
                if mtime >= racy_before_ns or old != pack(
                    st.st_size, mtime, st.st_ctime_ns, st.st_mode, st.st_ino, st.st_dev
                ):
                    found.append(Changed(head + name, st))
        except OSError:
            return None
    if matched != index.files:
        return None  # a file (or a whole directory of them) disappeared
    index.walked = walked
    return found


def git_changes(
    root_dir: Path,
    index: Index,
    diff: WorkTreeDiff,
    selection: Selection,
    *,
    racy_before_ns: int,
) -> list[Changed] | None:
    """What changed, from git's diff against C0 and the directory records; None: walk instead.

    None when the index has no git record for ``diff.revision``, or when any
    directory changed (a name may have been added, removed or renamed).
    """
    if index.git is None or index.git[0] != diff.revision or not index.walked:
        return None
    base = str(root_dir)
    try:
        for rel_dir, key in index.walked.items():
            st = os.lstat(f"{base}/{rel_dir}" if rel_dir else base)
            if not key or dir_key(st, racy_before_ns) != key:
                return None
    except OSError:
        return None
    found: list[Changed] = []
    for rel in sorted(index.git[1] | diff.differing):
        directory, _, name = rel.rpartition("/")
        old = index.dirs.get(directory, {}).get(name)
        try:
            st = os.lstat(f"{base}/{rel}")
        except FileNotFoundError:
            if old is None:
                continue  # gone from the work tree, and never in the layer
            return None
        except OSError:
            return None
        if old is None:
            if stat.S_ISDIR(st.st_mode) or not selection.selects(rel):
                continue  # not part of the layer (excluded, or a directory)
            return None  # unexpected: let the walk decide
        if stat.S_ISDIR(st.st_mode):
            return None
        if st.st_mtime_ns >= racy_before_ns or old != _PACK(
            st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_ino, st.st_dev
        ):
            found.append(Changed(rel, st))
    return found


def key_of(parts: Sequence[object]) -> str:
    return hashlib.sha256(repr(tuple(parts)).encode("utf-8", "surrogateescape")).hexdigest()


def load(path: Path) -> Index | None:
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if len(raw) < 32 or hashlib.sha256(raw[32:]).digest() != raw[:32]:
        return None
    try:
        version, epoch, dirs, layers, files, walked, git = marshal.loads(raw[32:])  # noqa: S302
    except (ValueError, EOFError, TypeError):
        return None
    if version != VERSION:
        return None
    return Index(epoch, dirs, layers, files, walked, git)


def save(path: Path, index: Index) -> None:
    body = marshal.dumps(
        (VERSION, index.epoch, index.dirs, index.layers, index.files, index.walked, index.git)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(hashlib.sha256(body).digest() + body)
    tmp.replace(path)  # a cache: losing it costs a full scan, so no fsync


__all__ = [
    "Changed",
    "Index",
    "build_index",
    "changes",
    "dir_key",
    "git_changes",
    "key_of",
    "load",
    "packed",
    "save",
]
