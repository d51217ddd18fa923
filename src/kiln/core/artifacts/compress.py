"""Deterministic gzip: no file name, mtime 0, fixed level, one member.

zlib's own gzip wrapper (``wbits=31``) writes a ten-byte header with mtime 0, no
name and OS byte 3, so the output depends only on the input, the level and the
zlib implementation. kiln's artifact digests never depend on it (layers are
stored uncompressed, docs/artifacts.md); this is for exports that ask for gzip.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

LEVEL = 6


def gzip_chunks(chunks: Iterable[bytes], *, level: int = LEVEL) -> Iterator[bytes]:
    """Compress a stream of byte chunks to gzip, yielding compressed chunks."""
    engine = zlib.compressobj(level, zlib.DEFLATED, 31, 9, zlib.Z_DEFAULT_STRATEGY)
    for chunk in chunks:
        out = engine.compress(chunk)
        if out:
            yield out
    yield engine.flush()
