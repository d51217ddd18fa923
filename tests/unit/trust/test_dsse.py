"""DSSE v1: the PAE, base64 in both alphabets, and strict envelope parsing."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from kiln.core.attest.dsse import Envelope, b64decode_any, pae, parse_envelope
from kiln.errors import InvalidInput

# Test vector from the DSSE protocol, v1.0.0 (secure-systems-lab/dsse, protocol.md,
# "Test Vectors"): the PAE text, and an ECDSA P-256 / SHA-256 signature over it
# by the published key (X, Y), raw r||s, in the recommended JSON envelope.
VECTOR_TYPE = "http://example.com/HelloWorld"
VECTOR_BODY = b"hello world"
VECTOR_PAE = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
VECTOR_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
VECTOR_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
VECTOR_ENVELOPE = (
    b'{"payload": "aGVsbG8gd29ybGQ=",'
    b' "payloadType": "http://example.com/HelloWorld",'
    b' "signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJ'
    b'PcIAriEGAHTVeCUjW2JIZA=="}]}'
)


def test_pae_matches_the_dsse_spec_test_vector() -> None:
    assert pae(VECTOR_TYPE, VECTOR_BODY) == VECTOR_PAE


def test_the_spec_vector_signature_verifies_over_kilns_pae() -> None:
    envelope = parse_envelope(VECTOR_ENVELOPE)
    assert envelope.payload == VECTOR_BODY
    assert envelope.pae() == VECTOR_PAE
    raw = envelope.signatures[0].sig
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    key = ec.EllipticCurvePublicNumbers(VECTOR_X, VECTOR_Y, ec.SECP256R1()).public_key()
    key.verify(encode_dss_signature(r, s), envelope.pae(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        key.verify(encode_dss_signature(r, s), envelope.pae() + b"!", ec.ECDSA(hashes.SHA256()))


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t/ü", "é".encode()) == b"DSSEv1 4 t/\xc3\xbc 2 \xc3\xa9"


def test_pae_of_empty_type_and_body() -> None:
    assert pae("", b"") == b"DSSEv1 0  0 "


@given(st.binary(max_size=64))
def test_both_base64_alphabets_with_or_without_padding_decode(data: bytes) -> None:
    standard = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode()
    for text in (standard, urlsafe, standard.rstrip("="), urlsafe.rstrip("=")):
        assert b64decode_any(text) == data


@pytest.mark.parametrize("text", ["a", "ab$c", "ab=c", "====", "abc==="])
def test_text_that_is_not_base64_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not base64"):
        b64decode_any(text)


def test_an_envelope_round_trips_through_its_bytes() -> None:
    envelope = Envelope("application/vnd.in-toto+json", b"{}").with_signature("k1", b"\x01" * 64)
    assert parse_envelope(envelope.to_bytes()) == envelope


def test_an_envelope_with_urlsafe_unpadded_fields_parses() -> None:
    sig = bytes(range(250, 256)) * 10 + b"\xff\xfe\xfd\xfc"
    doc = {
        "payloadType": "x",
        "payload": base64.urlsafe_b64encode(b"\xfb\xff?").decode().rstrip("="),
        "signatures": [{"keyid": "", "sig": base64.urlsafe_b64encode(sig).decode().rstrip("=")}],
    }
    envelope = parse_envelope(json.dumps(doc).encode())
    assert envelope.payload == b"\xfb\xff?"
    assert envelope.signatures[0].sig == sig


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"payloadType": "x", "payload": "e30=", "signatures": [', "truncated or corrupted"),
        (b"", "truncated or corrupted"),
        (b"[]", "not a JSON object"),
        (b'{"payload": "e30=", "signatures": []}', "no payloadType"),
        (b'{"payloadType": "x", "signatures": []}', "no payload string"),
        (b'{"payloadType": "x", "payload": "e30="}', "no signatures list"),
        (b'{"payloadType": "x", "payload": "!!", "signatures": []}', "payload is not base64"),
        (b'{"payloadType": "x", "payload": "e30=", "signatures": [{}]}', "no sig string"),
        (
            b'{"payloadType": "x", "payload": "e30=", "signatures": [{"sig": "AA", "keyid": 3}]}',
            "keyid is not a string",
        ),
        (b'{"payloadType": "x", "payload": "e30=", "payload": "e30=", "signatures": []}', "twice"),
        (b'\xff{"payloadType": "x"}', "not UTF-8"),
        (
            b'{"payloadType": "x", "payload": "e30=", "signatures": ['
            + b",".join([b'{"sig": "AA=="}'] * 65)
            + b"]}",
            "65 signatures; at most 64",
        ),
    ],
)
def test_malformed_envelopes_are_refused_with_the_reason(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_envelope(raw)


def test_a_duplicated_payload_key_cannot_smuggle_a_second_payload() -> None:
    raw = (
        b'{"payloadType": "application/vnd.in-toto+json", "payload": "e30=",'
        b' "signatures": [], "payload": "eyJldmlsIjogMX0="}'
    )
    with pytest.raises(InvalidInput, match="'payload' appears twice"):
        parse_envelope(raw)
