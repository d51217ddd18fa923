"""Verification is total: any bytes give a verdict, and no mutation can change what is trusted."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.core.attest.dsse import parse_envelope
from kiln.core.attest.policy import KeyKind, Requirement
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.statement import statement
from kiln.core.attest.verify import EnvelopeInput, Rejected, Verified, verify
from kiln.services.attest import sign_statement
from tests.unit.trust.fakes import ARTIFACT, BUILDER, policy

POLICY = policy(Requirement(SLSA_PROVENANCE_V1, KeyKind.BUILDER))
GOOD = sign_statement(
    statement([("hello", ARTIFACT)], SLSA_PROVENANCE_V1, {"builder": "ci", "n": 1}), [BUILDER]
)
RAW = GOOD.to_bytes()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_never_raised(raw: bytes) -> None:
    verdict = verify([EnvelopeInput(raw, "fuzz")], POLICY, ARTIFACT)
    assert isinstance(verdict, Rejected)
    assert verdict.reasons


@settings(max_examples=400)
@given(st.integers(min_value=0, max_value=len(RAW) - 1), st.integers(min_value=0, max_value=255))
def test_no_single_byte_change_alters_what_is_trusted(position: int, value: int) -> None:
    mutated = bytearray(RAW)
    mutated[position] = value
    verdict = verify([EnvelopeInput(bytes(mutated), "fuzz")], POLICY, ARTIFACT)
    if isinstance(verdict, Verified):
        # Only changes that leave the signed content intact may pass (a keyid is a hint,
        # and some base64 padding bits are ignored by decoders).
        envelope = parse_envelope(bytes(mutated))
        assert envelope.payload == GOOD.payload
        assert envelope.payload_type == GOOD.payload_type
        assert [s.sig for s in envelope.signatures] == [s.sig for s in GOOD.signatures]


@given(
    st.lists(
        st.one_of(st.just(RAW), st.binary(max_size=64), st.just(RAW[:-7])),
        min_size=0,
        max_size=6,
    )
)
def test_a_mix_of_good_and_bad_envelopes_passes_only_when_all_are_good(raws: list[bytes]) -> None:
    verdict = verify([EnvelopeInput(r, f"e{i}") for i, r in enumerate(raws)], POLICY, ARTIFACT)
    assert isinstance(verdict, Verified) == (bool(raws) and all(r == RAW for r in raws))
