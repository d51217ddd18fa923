"""DSSE v1 envelopes: the pre-authentication encoding, parsing and serialising.

The signature covers ``PAE(payloadType, payload)`` as defined in the DSSE
protocol v1.0.0 ("Signature Definition")::

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with ``LEN`` the ASCII decimal byte length and ``SP`` one 0x20 byte. The JSON
envelope (DSSE ``envelope.md``) carries base64 ``payload`` and ``sig``; the
protocol says verifiers MUST accept the standard and the URL-safe alphabet, so
``b64decode_any`` takes either, with or without padding. kiln writes standard
base64 with padding, which every implementation reads.

Parsing is strict where laxness would let two readers see different content:
duplicate JSON keys are refused (a second ``payload`` key must not shadow the
first) and every field must have its declared type.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kiln.errors import InvalidInput

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ENVELOPE_BYTES = 32 << 20
"""An SBOM of a few thousand packages is well under 10 MiB; anything larger is refused
before JSON parsing so a hostile envelope cannot exhaust memory."""

MAX_SIGNATURES = 64
"""More signatures than any real threshold needs; refusing more bounds the work of
trying every trusted key against signatures whose keyid is unknown."""

_B64 = re.compile(r"^[A-Za-z0-9+/\-_]*={0,2}$")


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding of DSSE v1 (protocol.md, "Signature Definition")."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode_any(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not; raise ``ValueError`` otherwise."""
    if not _B64.match(text) or ("=" in text.rstrip("=")):
        raise ValueError("not base64")
    body = text.rstrip("=")
    if len(body) % 4 == 1:
        raise ValueError("not base64 (impossible length)")
    padded = body + "=" * (-len(body) % 4)
    standard = padded.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64 ({exc})") from None


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...] = ()

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def with_signature(self, keyid: str, sig: bytes) -> Envelope:
        return Envelope(self.payload_type, self.payload, (*self.signatures, Signature(keyid, sig)))

    def to_json(self) -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": b64encode(self.payload),
            "signatures": [{"keyid": s.keyid, "sig": b64encode(s.sig)} for s in self.signatures],
        }

    def to_bytes(self) -> bytes:
        """Canonical bytes kiln stores: sorted keys, no spaces, so equal envelopes hash equal."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode("utf-8")


def reject_duplicate_keys(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` object hook: a key that appears twice is an error, not a silent override."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


_STRICT = json.JSONDecoder(object_pairs_hook=reject_duplicate_keys)


def loads_strict(data: bytes) -> Any:
    """Parse JSON refusing duplicate keys; raise ``ValueError`` with a short reason."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (bad byte at offset {exc.start})") from None
    try:
        return _STRICT.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON, truncated or corrupted ({exc.msg} at line {exc.lineno}"
            f" column {exc.colno})"
        ) from None
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None


def parse_envelope(data: bytes) -> Envelope:
    """Parse one JSON DSSE envelope; raise ``InvalidInput`` saying what is wrong."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise InvalidInput(f"the envelope is {len(data)} bytes; at most {MAX_ENVELOPE_BYTES}")
    try:
        doc = loads_strict(data)
    except ValueError as exc:
        raise InvalidInput(f"the envelope is invalid: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("the envelope is not a JSON object")
    payload_type = doc.get("payloadType")
    payload = doc.get("payload")
    signatures = doc.get("signatures")
    if not isinstance(payload_type, str) or not payload_type:
        raise InvalidInput("the envelope has no payloadType string")
    if not isinstance(payload, str):
        raise InvalidInput("the envelope has no payload string")
    if not isinstance(signatures, list):
        raise InvalidInput("the envelope has no signatures list")
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidInput(
            f"the envelope has {len(signatures)} signatures; at most {MAX_SIGNATURES}"
        )
    try:
        body = b64decode_any(payload)
    except ValueError as exc:
        raise InvalidInput(f"the envelope payload is {exc}") from None
    sigs: list[Signature] = []
    for index, item in enumerate(signatures):
        if not isinstance(item, dict) or not isinstance(item.get("sig"), str):
            raise InvalidInput(f"signatures[{index}] has no sig string")
        keyid = item.get("keyid", "")
        if not isinstance(keyid, str):
            raise InvalidInput(f"signatures[{index}].keyid is not a string")
        try:
            raw = b64decode_any(item["sig"])
        except ValueError as exc:
            raise InvalidInput(f"signatures[{index}].sig is {exc}") from None
        sigs.append(Signature(keyid, raw))
    return Envelope(payload_type, body, tuple(sigs))
