"""Checkpoints as C2SP signed notes (c2sp.org/signed-note, c2sp.org/tlog-checkpoint)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from kiln.core.ledger.checkpoint import Checkpoint, note_key_id, open_note, sign, vkey
from kiln.errors import IntegrityError, InvalidInput
from tests.unit.ledger.conftest import KeyPair

ROOT = bytes(range(32))
ORIGIN = "kiln.local/ledger/0011223344556677"


def test_the_body_is_origin_size_and_base64_root_each_on_a_line() -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n".encode()


def test_the_key_id_is_the_first_four_bytes_of_the_spec_hash(key: KeyPair) -> None:
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + key.public_key).digest()[:4]
    assert note_key_id(ORIGIN, key.public_key) == expected
    text = vkey(ORIGIN, key.public_key)
    name, kid, blob = text.split("+", 2)
    assert (name, kid) == (ORIGIN, expected.hex())
    assert base64.b64decode(blob) == b"\x01" + key.public_key


def test_a_signed_note_has_one_em_dash_signature_line_and_verifies(key: KeyPair) -> None:
    signed = sign(Checkpoint(ORIGIN, 42, ROOT), public_key=key.public_key, sign_bytes=key.sign)
    body, sigs = signed.note.split(b"\n\n")
    assert body + b"\n" == Checkpoint(ORIGIN, 42, ROOT).body()
    line = sigs.decode()
    assert line.startswith(f"\u2014 {ORIGIN} ") and line.endswith("\n")
    blob = base64.b64decode(line.split(" ")[2])
    assert blob[:4] == note_key_id(ORIGIN, key.public_key) and len(blob) == 68
    opened = open_note(signed.note, public_key=key.public_key, origin=ORIGIN)
    assert (opened.size, opened.root) == (42, ROOT)


def test_a_changed_body_or_another_key_is_rejected(key: KeyPair) -> None:
    signed = sign(Checkpoint(ORIGIN, 42, ROOT), public_key=key.public_key, sign_bytes=key.sign)
    with pytest.raises(IntegrityError, match="bad signature"):
        open_note(signed.note.replace(b"\n42\n", b"\n43\n"), public_key=key.public_key)
    with pytest.raises(IntegrityError, match="not signed by the ledger key"):
        open_note(signed.note, public_key=KeyPair().public_key)
    with pytest.raises(IntegrityError, match="is for log"):
        open_note(signed.note, public_key=key.public_key, origin="kiln.local/ledger/other")


def test_signatures_of_unknown_keys_are_ignored(key: KeyPair) -> None:
    signed = sign(Checkpoint(ORIGIN, 1, ROOT), public_key=key.public_key, sign_bytes=key.sign)
    other = base64.b64encode(b"\x00" * 68).decode()
    note = signed.note + f"\u2014 witness.example {other}\n".encode()
    assert open_note(note, public_key=key.public_key).size == 1


def test_malformed_notes_are_rejected(key: KeyPair) -> None:
    for note in (b"", b"no signature\n", b"a\n1\nAA==\n\nnot a signature line\n"):
        with pytest.raises(IntegrityError):
            open_note(note, public_key=key.public_key)
    with pytest.raises(InvalidInput):
        Checkpoint("has space", 1, ROOT)
