"""Stable split of the application tree into layers.

A single application layer must be re-read and re-hashed in full when one file
changes, so a rebuild costs as much as a build. kiln instead cuts the sorted
entry list into several layers at *content-independent* boundaries: a cut falls
after every file whose path's CRC-32 is 0 modulo ``FILES_PER_LAYER``. Editing a
file never moves a boundary; adding or removing one moves at most the cut next
to it. So a one-file change rebuilds one layer of about ``FILES_PER_LAYER``
files, the others keep their digests (and a registry already holds them). The
same idea as rpm-ostree's chunked OCI images, with a rule simple enough to
state in one sentence.

A small app (a few hundred files) stays one layer. The layer count is capped at
``MAX_LAYERS`` by merging neighbours, so very large trees stay far from the
overlay filesystem's layer limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import TypeVar

from kiln.core.artifacts.tarformat import Entry, Kind

# 512 files per layer on average: a 20k-file app becomes ~40 layers of a few MB,
# so a one-file rebuild rewrites a few MB, while small apps (a few hundred files)
# stay a single layer. 64 leaves half of the overlay layer limit to spare.
FILES_PER_LAYER = 512
MAX_LAYERS = 64

T = TypeVar("T")


def is_boundary(path: str, *, every: int = FILES_PER_LAYER) -> bool:
    # CRC-32 (ISO-HDLC, as zlib computes it) is stable everywhere and cheap enough
    # to run on every path of a large tree; it needs to spread paths, not resist
    # an adversary (a crafted tree can at worst make layers uneven).
    return zlib.crc32(path.encode("utf-8", "surrogateescape")) % every == 0


def split(
    items: Sequence[T],
    entry_of: Callable[[T], Entry],
    *,
    every: int = FILES_PER_LAYER,
    max_layers: int = MAX_LAYERS,
) -> list[list[T]]:
    """Cut sorted ``items`` into chunks; never returns an empty chunk (nor none)."""
    cuts = [
        index + 1
        for index, item in enumerate(items)
        if (entry := entry_of(item)).kind is Kind.FILE and is_boundary(entry.path, every=every)
    ]
    starts = [0, *cuts]
    ends = [*cuts, len(items)]
    chunks = [list(items[a:b]) for a, b in zip(starts, ends, strict=True) if b > a]
    if not chunks:
        chunks = [[]]
    while len(chunks) > max_layers:
        merged = [chunks[i] + chunks[i + 1] for i in range(0, len(chunks) - 1, 2)]
        if len(chunks) % 2:
            merged.append(chunks[-1])
        chunks = merged
    return chunks
