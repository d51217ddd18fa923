"""The local content-addressed store on a real filesystem."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.adapters.artifacts.local import LocalStore
from kiln.core.artifacts.tags import parse_tag
from kiln.core.digest import digest_bytes
from kiln.errors import IntegrityError, NotFound, Refused


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_a_blob_is_named_by_its_digest_and_read_back_verified(store: LocalStore) -> None:
    info = store.put_blob(b"hello")
    assert info.digest == digest_bytes(b"hello") and info.size == 5
    assert store.read_blob(info.digest) == b"hello"
    assert store.blob_path(info.digest).stat().st_mode & 0o777 == 0o444
    assert store.put_blob(b"hello") == info  # written once; a second put is a no-op


def test_a_corrupted_blob_is_refused_on_read(store: LocalStore) -> None:
    info = store.put_blob(b"hello")
    path = store.blob_path(info.digest)
    path.chmod(0o644)
    path.write_bytes(b"jello")
    with pytest.raises(IntegrityError, match="is corrupt"):
        store.read_blob(info.digest)
    with pytest.raises(IntegrityError), store.open_blob(info.digest) as stream:
        stream.read()


def test_a_failed_write_leaves_no_partial_blob(store: LocalStore) -> None:
    with pytest.raises(RuntimeError), store.writer() as writer:
        writer.write(b"half of a layer")
        raise RuntimeError("disk full")
    assert store.blobs() == frozenset()
    assert list((store.root / "tmp").iterdir()) == []


def test_a_write_that_does_not_match_the_expected_digest_keeps_nothing(store: LocalStore) -> None:
    with pytest.raises(IntegrityError, match="not the expected"):
        store.put_blob(b"evil", expected=digest_bytes(b"good"))
    assert store.blobs() == frozenset()
    assert list((store.root / "tmp").iterdir()) == []


def test_moving_a_tag_is_refused_naming_both_digests(store: LocalStore) -> None:
    one = store.put_blob(b"one").digest
    two = store.put_blob(b"two").digest
    tag = parse_tag("hello:1.0.0-gabcdef0")
    store.tag(tag, one, created="t")
    store.tag(tag, one, created="later")  # pointing it at the same digest again is fine
    with pytest.raises(Refused) as info:
        store.tag(tag, two, created="t")
    assert one in info.value.message and two in info.value.message
    assert store.resolve(tag) == one


def test_an_unknown_tag_is_not_found(store: LocalStore) -> None:
    with pytest.raises(NotFound):
        store.resolve(parse_tag("hello:nope"))


def test_revocations_are_permanent(store: LocalStore) -> None:
    digest = store.put_blob(b"m").digest
    assert store.revocation(digest) is None
    first = store.revoke(digest, reason="CVE-2026-1", actor="alice", at="t1")
    again = store.revoke(digest, reason="other", actor="bob", at="t2")
    assert store.revocation(digest) == first == again


def test_the_store_is_an_oci_layout(store: LocalStore) -> None:
    assert (store.root / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'
    assert (store.root / "index.json").is_file()


def test_delete_reports_the_bytes_freed(store: LocalStore) -> None:
    digest = store.put_blob(b"12345").digest
    assert store.delete_blob(digest) == 5
    assert store.delete_blob(digest) == 0
    assert not store.blob_path(digest).exists()
