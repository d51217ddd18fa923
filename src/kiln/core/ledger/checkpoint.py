"""Checkpoints: the signed tree heads of the ledger, as C2SP signed notes. Pure.

A checkpoint body follows c2sp.org/tlog-checkpoint:

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, standard base64>\\n

and is wrapped in a signed note (c2sp.org/signed-note): the body, one blank line,
then one line per signature

    — <key name> <base64(key id || Ed25519 signature over the body)>\\n

where ``—`` is U+2014 and the 4-byte key id is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || 32-byte public key) (0x01 names Ed25519).
The key name kiln uses is the origin itself, as Go's sumdb and most logs do.
Any tool that reads signed notes (``golang.org/x/mod/sumdb/note``) can verify a
kiln checkpoint given the verifier key ``vkey(name, public_key)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from kiln.core.keys import verify_ed25519
from kiln.errors import IntegrityError, InvalidInput

ED25519_TYPE = b"\x01"
_DASH = "\u2014"
_ORIGIN = re.compile(r"^[^\s+]+$")


def note_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte signed-note key id of an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public_key).digest()[:4]


def vkey(name: str, public_key: bytes) -> str:
    """The verifier key text Go's ``note.NewVerifier`` accepts."""
    kid = note_key_id(name, public_key).hex()
    return f"{name}+{kid}+{base64.b64encode(ED25519_TYPE + public_key).decode()}"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if not _ORIGIN.match(self.origin):
            raise InvalidInput(f"checkpoint origin {self.origin!r} has spaces or '+'")
        if self.size < 0 or len(self.root) != 32:
            raise InvalidInput("a checkpoint needs a size >= 0 and a 32-byte root")

    def body(self) -> bytes:
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\n".encode()


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: bytes  # the whole signed note, as written to disk and exports

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def origin(self) -> str:
        return self.checkpoint.origin


def sign(
    checkpoint: Checkpoint, *, public_key: bytes, sign_bytes: Callable[[bytes], bytes]
) -> SignedCheckpoint:
    body = checkpoint.body()
    signature = sign_bytes(body)
    kid = note_key_id(checkpoint.origin, public_key)
    line = f"{_DASH} {checkpoint.origin} {base64.b64encode(kid + signature).decode()}\n"
    return SignedCheckpoint(checkpoint, body + b"\n" + line.encode())


def parse_body(body: bytes) -> Checkpoint:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("checkpoint is not UTF-8") from None
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise InvalidInput("checkpoint body needs origin, size and root lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise InvalidInput(f"checkpoint size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise InvalidInput("checkpoint root is not base64") from None
    return Checkpoint(origin, int(size_text), root)


def open_note(note: bytes, *, public_key: bytes, origin: str | None = None) -> SignedCheckpoint:
    """Parse a signed checkpoint and verify kiln's signature on it.

    Fails closed: the note must carry a line for the key (name = origin) whose
    signature verifies; other signers' lines are ignored, as the spec asks.
    """
    if any(b < 0x20 and b != 0x0A for b in note):
        raise IntegrityError("checkpoint contains control characters")
    split = note.rfind(b"\n\n")
    if split < 0 or not note.endswith(b"\n"):
        raise IntegrityError("checkpoint is not a signed note (no signature block)")
    body, sig_block = note[: split + 1], note[split + 2 :]
    try:
        checkpoint = parse_body(body)
    except InvalidInput as exc:
        raise IntegrityError(f"checkpoint body: {exc.message}") from None
    if origin is not None and checkpoint.origin != origin:
        raise IntegrityError(
            f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}",
            hint="the database was replaced, or the checkpoint belongs to another ledger",
        )
    want_id = note_key_id(checkpoint.origin, public_key)
    for line in sig_block.decode("utf-8", "replace").split("\n")[:-1]:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise IntegrityError(f"malformed signature line {line!r}")
        name, blob_text = parts[1], parts[2]
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except binascii.Error:
            raise IntegrityError("signature line is not base64") from None
        if name != checkpoint.origin or blob[:4] != want_id:
            continue
        if verify_ed25519(public_key, body, blob[4:]):
            return SignedCheckpoint(checkpoint, note)
        raise IntegrityError(f"checkpoint at size {checkpoint.size} has a bad signature")
    raise IntegrityError(
        f"checkpoint at size {checkpoint.size} is not signed by the ledger key",
        hint="pass the public key that signed it with --key",
    )
