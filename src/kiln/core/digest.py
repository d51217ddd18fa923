"""Content digests: the names of everything kiln stores.

A ``Digest`` is ``sha256:<64 lowercase hex>`` as in the OCI image spec
(descriptor ``digest`` grammar restricted to the one algorithm kiln writes).
It is validated once, where it is parsed, and is a plain ``str`` afterwards so
it serialises without ceremony.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO, NewType

from kiln.errors import InvalidInput

Digest = NewType("Digest", str)

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHUNK = 1 << 20


def parse_digest(text: str, *, what: str = "digest") -> Digest:
    """Return ``text`` as a ``Digest`` or raise ``InvalidInput`` naming ``what``."""
    if not _DIGEST.match(text):
        raise InvalidInput(
            f"{what} {text!r} is not a sha256 digest",
            hint="a digest looks like sha256: followed by 64 lowercase hex characters",
        )
    return Digest(text)


def is_digest(text: str) -> bool:
    return bool(_DIGEST.match(text))


def digest_bytes(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def digest_stream(stream: BinaryIO) -> tuple[Digest, int]:
    """Hash a stream to its end; return its digest and length in bytes."""
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        h.update(chunk)
        size += len(chunk)
    return Digest("sha256:" + h.hexdigest()), size


def hex_of(digest: Digest) -> str:
    """The hex part of a digest, as used in ``blobs/sha256/<hex>`` paths."""
    return digest.split(":", 1)[1]


def short(digest: Digest, length: int = 12) -> str:
    return hex_of(digest)[:length]
