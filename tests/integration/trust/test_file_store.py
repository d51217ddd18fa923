"""The state-directory attestation store on a real filesystem, read back by verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.adapters.artifacts.attestations import FileAttestationStore
from kiln.adapters.keys.file import generate
from kiln.core.attest.policy import KeyKind, Requirement, TrustedKey, TrustPolicy
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.statement import statement
from kiln.core.attest.verify import Rejected, Verified
from kiln.core.digest import digest_bytes, hex_of
from kiln.errors import IntegrityError
from kiln.services.attest import attest
from kiln.services.verify import verify_artifact

ONE = digest_bytes(b"image one")
TWO = digest_bytes(b"image two")


@pytest.fixture
def store(tmp_path: Path) -> FileAttestationStore:
    return FileAttestationStore.in_state_dir(tmp_path / ".kiln")


def test_envelopes_are_content_addressed_and_indexed_by_each_subject(
    store: FileAttestationStore,
) -> None:
    digest = store.put(b'{"an": "envelope"}', [ONE, TWO])
    assert digest == digest_bytes(b'{"an": "envelope"}')
    blob = store.root / "blobs" / "sha256" / hex_of(digest)
    assert blob.read_bytes() == b'{"an": "envelope"}'
    assert (store.root / "subjects" / hex_of(ONE) / hex_of(digest)).exists()
    assert [e.digest for e in store.for_subject(ONE)] == [digest]
    assert [e.digest for e in store.for_subject(TWO)] == [digest]
    assert store.for_subject(digest_bytes(b"nothing")) == []


def test_putting_the_same_envelope_again_is_idempotent(store: FileAttestationStore) -> None:
    first = store.put(b"same", [ONE])
    second = store.put(b"same", [ONE])
    assert first == second
    assert len(store.for_subject(ONE)) == 1


def test_a_blob_changed_on_disk_is_never_silently_kept(store: FileAttestationStore) -> None:
    digest = store.put(b"original", [ONE])
    (store.root / "blobs" / "sha256" / hex_of(digest)).write_bytes(b"changed")
    with pytest.raises(IntegrityError, match="does not match its digest"):
        store.put(b"original", [ONE])
    (item,) = store.for_subject(ONE)
    assert (item.digest, item.raw) == (digest, b"changed")


def test_leftover_temp_files_in_an_index_are_ignored(store: FileAttestationStore) -> None:
    digest = store.put(b"x", [ONE])
    (store.root / "subjects" / hex_of(ONE) / ".tmp-123").write_bytes(b"")
    assert [e.digest for e in store.for_subject(ONE)] == [digest]


def test_signed_stored_and_verified_with_real_keys_and_files(
    tmp_path: Path, store: FileAttestationStore
) -> None:
    signer = generate(tmp_path / "keys" / "ci.key")
    policy = TrustPolicy(
        (TrustedKey("ci", signer.key_id, signer.public_key, frozenset({KeyKind.BUILDER})),),
        (Requirement(SLSA_PROVENANCE_V1, KeyKind.BUILDER),),
    )
    stmt = statement([("hello", ONE)], SLSA_PROVENANCE_V1, {"buildDefinition": {}})
    result = attest(stmt, signer=signer, store=store)
    assert isinstance(verify_artifact(ONE, store=store, policy=policy), Verified)
    assert isinstance(verify_artifact(TWO, store=store, policy=policy), Rejected)
    (store.root / "blobs" / "sha256" / hex_of(result.digest)).unlink()
    verdict = verify_artifact(ONE, store=store, policy=policy)
    assert isinstance(verdict, Rejected)
    assert [r.code for r in verdict.reasons] == ["corrupt", "missing"]
