"""Deterministic tar headers: what the core writes, read back by Python's tarfile."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln.core.artifacts.tarformat import (
    BLOCK,
    END_OF_ARCHIVE,
    Entry,
    Kind,
    header,
    padding,
    parents,
)
from kiln.errors import InvalidInput


def archive(entries: list[tuple[Entry, bytes]], mtime: int = 1_700_000_000) -> bytes:
    out = b""
    for entry, data in entries:
        out += header(entry, mtime=mtime) + data + padding(len(data))
    return out + END_OF_ARCHIVE


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_every_header_has_root_ownership_fixed_mtime_and_normalised_modes() -> None:
    data = archive(
        [
            (Entry("app", Kind.DIR), b""),
            (Entry("app/run.sh", Kind.FILE, executable=True, size=3), b"hi\n"),
            (Entry("app/x.py", Kind.FILE, size=2), b"x\n"),
            (Entry("app/link", Kind.SYMLINK, linkname="x.py"), b""),
        ]
    )
    got = [
        (m.name, m.type, oct(m.mode), m.uid, m.gid, m.uname, m.gname, m.mtime)
        for m in members(data)
    ]
    assert got == [
        ("app", tarfile.DIRTYPE, "0o755", 0, 0, "", "", 1_700_000_000),
        ("app/run.sh", tarfile.REGTYPE, "0o755", 0, 0, "", "", 1_700_000_000),
        ("app/x.py", tarfile.REGTYPE, "0o644", 0, 0, "", "", 1_700_000_000),
        ("app/link", tarfile.SYMTYPE, "0o777", 0, 0, "", "", 1_700_000_000),
    ]
    assert members(data)[3].linkname == "x.py"


def test_a_header_is_one_block_and_carries_no_pax_records_for_short_paths() -> None:
    block = header(Entry("app/x.py", Kind.FILE, size=1), mtime=0)
    assert len(block) == BLOCK
    assert b"PaxHeaders" not in block


def test_long_paths_get_a_pax_path_record_and_nothing_else() -> None:
    long = "app/" + "/".join(["d" * 60] * 6) + "/file.txt"
    data = archive([(Entry(long, Kind.FILE, size=1), b"x")])
    (member,) = members(data)
    assert member.name == long
    assert member.pax_headers == {"path": long}


def test_a_path_that_fits_ustar_prefix_needs_no_pax() -> None:
    path = "app/" + "p" * 120 + "/name.txt"
    block = header(Entry(path, Kind.FILE, size=0), mtime=0)
    assert len(block) == BLOCK
    (member,) = members(block + END_OF_ARCHIVE)
    assert member.name == path


def test_non_utf8_names_are_refused() -> None:
    bad = b"app/caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        header(Entry(bad, Kind.FILE), mtime=0)


def test_padding_completes_a_block() -> None:
    assert [len(padding(n)) for n in (0, 1, 511, 512, 513)] == [0, 511, 1, 0, 511]


def test_parents_lists_ancestors_outermost_first() -> None:
    assert parents("a/b/c.txt") == ["a", "a/b"]
    assert parents("top") == []


@given(
    name=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\0"),
        min_size=1,
        max_size=40,
    ),
    size=st.integers(min_value=0, max_value=10_000),
    executable=st.booleans(),
)
def test_headers_depend_only_on_the_entry_and_round_trip(
    name: str, size: int, executable: bool
) -> None:
    entry = Entry(f"app/{name}", Kind.FILE, executable=executable, size=size)
    first = header(entry, mtime=42)
    assert first == header(entry, mtime=42)
    data = first + b"\0" * size + padding(size) + END_OF_ARCHIVE
    (member,) = members(data)
    assert member.name == f"app/{name}".rstrip("/")
    assert member.size == size
