"""Deterministic tar headers (POSIX ustar, pax only for paths that do not fit).

Every header kiln writes depends on the entry's path, kind, executable bit,
size, link target and one fixed mtime, nothing else: uid/gid 0, no user or group
names, modes normalised to 0644/0755 (directories 0755, symlinks 0777), no
xattrs, no atime/ctime. A path longer than ustar's name+prefix fields gets one
pax extended header holding only ``path`` (and ``linkpath``), so the archive
carries no pax records beyond the ones needed to name the file.

Format reference: POSIX.1-2017 ``pax`` utility, "ustar Interchange Format" and
"pax Header Block".
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from kiln.errors import InvalidInput

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)

FILE_MODE = 0o644
EXEC_MODE = 0o755
DIR_MODE = 0o755
LINK_MODE = 0o777

# ustar's size field holds 11 octal digits; kiln refuses larger members instead
# of switching to a base-256 or pax size record.
MAX_MEMBER_SIZE = 8**11 - 1


class Kind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


class Entry(NamedTuple):
    """One member of a layer, in archive-relative form (``app/x.py``, no leading ``/``).

    A named tuple rather than a frozen dataclass: a build makes one per file and
    tuples are several times cheaper to create.
    """

    path: str
    kind: Kind
    executable: bool = False
    size: int = 0
    linkname: str = ""

    @property
    def mode(self) -> int:
        if self.kind is Kind.DIR:
            return DIR_MODE
        if self.kind is Kind.SYMLINK:
            return LINK_MODE
        return EXEC_MODE if self.executable else FILE_MODE


def padding(size: int) -> bytes:
    """Zero bytes that complete a member's data to a whole block."""
    rest = size % BLOCK
    return b"" if rest == 0 else b"\0" * (BLOCK - rest)


def _encode(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{what} {text.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8",
            hint="rename the file: kiln only puts UTF-8 file names in artifacts",
        ) from None


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for ustar, or None when the path needs a pax record."""
    if len(name) <= 100:
        return b"", name
    # The prefix ends at a '/', is at most 155 bytes, and the rest is at most 100.
    for index in range(min(len(name) - 1, 155), 0, -1):
        if name[index : index + 1] == b"/" and len(name) - index - 1 <= 100:
            return name[:index], name[index + 1 :]
    return None


def _block(
    *, name: bytes, prefix: bytes, mode: int, size: int, mtime: int, typeflag: bytes, link: bytes
) -> bytes:
    if len(name) > 100 or len(prefix) > 155 or len(link) > 100:
        raise InvalidInput(f"tar field overflow for {name!r}")
    if size >= 8**11 or mtime >= 8**11 or mtime < 0:
        raise InvalidInput(f"value does not fit a tar header field for {name!r}")
    header = b"".join(
        (
            name.ljust(100, b"\0"),
            b"%07o\0" % mode,
            b"0000000\0",  # uid
            b"0000000\0",  # gid
            b"%011o\0" % size,
            b"%011o\0" % mtime,
            b"        ",  # checksum, computed below over spaces (POSIX)
            typeflag,
            link.ljust(100, b"\0"),
            b"ustar\x0000",
            _EMPTY_NAMES,  # uname, gname
            b"0000000\0",  # devmajor
            b"0000000\0",  # devminor
            prefix.ljust(155, b"\0"),
            _EMPTY_TAIL,
        )
    )
    return header[:148] + b"%06o\0 " % sum(header) + header[156:]


_EMPTY_NAMES = b"\0" * 64
_EMPTY_TAIL = b"\0" * 12


def _pax_record(key: str, value: bytes) -> bytes:
    body = f" {key}=".encode() + value + b"\n"
    length = len(body)
    while True:
        record = str(length).encode("ascii") + body
        if len(record) == length:
            return record
        length = len(record)


def header(entry: Entry, *, mtime: int) -> bytes:
    """The header block(s) of ``entry`` (data and padding are written by the caller)."""
    if entry.size > MAX_MEMBER_SIZE:
        raise InvalidInput(f"{entry.path} is {entry.size} bytes, beyond the tar member limit")
    path = entry.path + "/" if entry.kind is Kind.DIR else entry.path
    name = _encode(path, "path")
    link = _encode(entry.linkname, "link target") if entry.kind is Kind.SYMLINK else b""
    typeflag = {Kind.FILE: b"0", Kind.DIR: b"5", Kind.SYMLINK: b"2"}[entry.kind]
    split = _split_ustar(name)
    records = b""
    if split is None:
        records += _pax_record("path", name)
        split = (b"", name[-100:])
    if len(link) > 100:
        records += _pax_record("linkpath", link)
        link = link[:100]
    out = b""
    if records:
        pax_name = b"PaxHeaders/" + name.rsplit(b"/", 1)[-1][-80:]
        out += _block(
            name=pax_name,
            prefix=b"",
            mode=FILE_MODE,
            size=len(records),
            mtime=mtime,
            typeflag=b"x",
            link=b"",
        )
        out += records + padding(len(records))
    out += _block(
        name=split[1],
        prefix=split[0],
        mode=entry.mode,
        size=entry.size if entry.kind is Kind.FILE else 0,
        mtime=mtime,
        typeflag=typeflag,
        link=link,
    )
    return out


def parents(path: str) -> list[str]:
    """Every ancestor directory of ``path``, outermost first (``a/b/c`` → ``a``, ``a/b``)."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
