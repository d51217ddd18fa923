"""Canonical JSON: the one byte form kiln hashes and signs.

Keys sorted, no insignificant whitespace, UTF-8 (not \\u-escaped), and NaN or
infinity refused, so the same value always gives the same bytes and digest.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(data: Any) -> bytes:
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
