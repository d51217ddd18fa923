"""One contract for every AttestationStore: the in-memory fake behaves like the file adapter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.adapters.artifacts.attestations import FileAttestationStore
from kiln.core.digest import digest_bytes
from kiln.ports.attestations import AttestationStore
from tests.unit.trust.fakes import MemoryStore

A = digest_bytes(b"artifact a")
B = digest_bytes(b"artifact b")

Factory = Callable[[Path], AttestationStore]
STORES: dict[str, Factory] = {
    "file": lambda root: FileAttestationStore(root / "attestations"),
    "memory": lambda root: MemoryStore(),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AttestationStore:
    return STORES[request.param](tmp_path)


def test_put_returns_the_content_digest(store: AttestationStore) -> None:
    assert store.put(b"envelope-1", [A]) == digest_bytes(b"envelope-1")


def test_listing_is_by_subject_and_stable(store: AttestationStore) -> None:
    one = store.put(b"envelope-1", [A])
    two = store.put(b"envelope-2", [A, B])
    assert [(e.digest, e.raw) for e in store.for_subject(A)] == sorted(
        [(one, b"envelope-1"), (two, b"envelope-2")]
    )
    assert [e.digest for e in store.for_subject(B)] == [two]
    assert store.for_subject(digest_bytes(b"none")) == []


def test_putting_twice_lists_once(store: AttestationStore) -> None:
    store.put(b"envelope-1", [A])
    store.put(b"envelope-1", [A])
    assert len(store.for_subject(A)) == 1
