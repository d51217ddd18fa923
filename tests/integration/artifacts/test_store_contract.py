"""The ``ArtifactStore`` contract, held by the local store and the in-memory fake alike.

Other areas' unit tests use ``MemoryStore``; this keeps it honest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.adapters.artifacts.local import LocalStore
from kiln.core.artifacts.tags import parse_tag
from kiln.core.digest import digest_bytes
from kiln.errors import IntegrityError, InvalidInput, NotFound, Refused
from kiln.ports.artifacts import ArtifactStore
from tests.unit.artifacts.fakes import MemoryStore

Factory = Callable[[Path], ArtifactStore]
STORES: dict[str, Factory] = {
    "local": lambda tmp: LocalStore(tmp / "store"),
    "memory": lambda tmp: MemoryStore(),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    return STORES[request.param](tmp_path)


def test_blobs_are_content_addressed_and_written_once(store: ArtifactStore) -> None:
    info = store.put_blob(b"abc")
    assert info.digest == digest_bytes(b"abc") and info.size == 3
    assert store.put_blob(b"abc") == info
    assert store.read_blob(info.digest) == b"abc"
    assert store.blobs() == frozenset({info.digest})
    assert store.blob_size(info.digest) == 3


def test_a_writer_that_fails_keeps_nothing(store: ArtifactStore) -> None:
    with pytest.raises(ValueError), store.writer() as out:
        out.write(b"partial")
        raise ValueError("interrupted")
    with pytest.raises(IntegrityError):
        store.put_blob(b"x", expected=digest_bytes(b"y"))
    assert store.blobs() == frozenset()


def test_unknown_blobs_and_tags_are_not_found(store: ArtifactStore) -> None:
    missing = digest_bytes(b"nothing")
    with pytest.raises(NotFound):
        store.read_blob(missing)
    with pytest.raises(NotFound):
        store.resolve(parse_tag("svc:none"))
    assert not store.has_blob(missing)
    assert store.delete_blob(missing) == 0


def test_tags_never_move(store: ArtifactStore) -> None:
    a = store.put_blob(b"a").digest
    b = store.put_blob(b"b").digest
    tag = parse_tag("svc:1.0.0-g1234567")
    store.tag(tag, a, created="t1")
    assert store.tag(tag, a, created="t2").digest == a
    with pytest.raises(Refused) as info:
        store.tag(tag, b, created="t3")
    assert a in info.value.message and b in info.value.message
    assert [r.digest for r in store.tags()] == [a]


def test_artifacts_and_revocations(store: ArtifactStore) -> None:
    manifest = store.put_blob(b"{}").digest
    store.add_artifact(manifest, service="svc", created="2026-01-01T00:00:00+00:00")
    store.add_artifact(manifest, service="svc", created="later")  # idempotent
    assert [(a.digest, a.service) for a in store.artifacts()] == [(manifest, "svc")]
    with pytest.raises(InvalidInput):
        store.revoke(manifest, reason=" ", actor="a", at="t")
    first = store.revoke(manifest, reason="bad", actor="a", at="t")
    assert store.revoke(manifest, reason="other", actor="b", at="u") == first
    assert store.revocation(manifest) == first
    store.forget_artifact(manifest)
    assert store.artifacts() == []
    with pytest.raises(NotFound):
        store.add_artifact(digest_bytes(b"absent"), service="svc", created="t")
