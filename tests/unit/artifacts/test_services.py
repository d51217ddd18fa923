"""Artifact use cases over the in-memory store: deployability, gc, tags, revocation."""

from __future__ import annotations

import pytest

from kiln.core.artifacts.retention import Policy
from kiln.core.ledger.kinds import EventKind
from kiln.errors import NotFound, Refused
from kiln.services.artifacts import add_tag, ensure_deployable, gc, list_artifacts, revoke
from tests.unit.artifacts.fakes import FakeRecorder, FrozenClock, MemoryStore
from tests.unit.artifacts.fakes import make_artifact as artifact


def test_a_revoked_artifact_is_refused_and_the_revocation_recorded() -> None:
    store, recorder = MemoryStore(), FakeRecorder()
    digest = artifact(store, 1)
    assert ensure_deployable(store, digest).digest == digest
    revoke(store, digest, reason="CVE-1", clock=FrozenClock(), recorder=recorder, actor="sec")
    with pytest.raises(Refused, match=r"revoked .* by sec: CVE-1"):
        ensure_deployable(store, digest)
    assert [e["kind"] for e in recorder.events] == [EventKind.REVOCATION]
    # revoking again neither changes the record nor records twice
    revoke(store, digest, reason="again", clock=FrozenClock(), recorder=recorder, actor="x")
    assert len(recorder.events) == 1
    assert list_artifacts(store)[0].revoked is not None


def test_an_incomplete_artifact_is_not_deployable() -> None:
    store = MemoryStore()
    digest = artifact(store, 1)
    store.delete_blob(next(iter(d for d in store.blobs() if store.data[d] == b"layer 1")))
    with pytest.raises(NotFound, match="incomplete"):
        ensure_deployable(store, digest)


def test_tagging_records_an_event_and_moving_is_refused() -> None:
    store, recorder = MemoryStore(), FakeRecorder()
    one, two = artifact(store, 1), artifact(store, 2)
    add_tag(store, one, "svc:stable", clock=FrozenClock(), recorder=recorder, actor="rel")
    with pytest.raises(Refused):
        add_tag(store, two, "svc:stable", clock=FrozenClock(), recorder=recorder, actor="rel")
    assert [e["details"] for e in recorder.events] == [{"tag": "svc:stable"}]


def test_gc_keeps_shared_blobs_and_frees_the_rest() -> None:
    store = MemoryStore()
    digests = [artifact(store, n) for n in range(1, 5)]
    before = len(store.blobs())
    report = gc(
        store,
        policy=Policy(keep_recent=1, keep_per_environment=1),
        referenced=frozenset({digests[0]}),
        environments={"prod": [digests[1]]},
        grace_seconds=0,
        now=store.now + 1,
    )
    assert report.plan.delete_artifacts == (digests[2],)
    assert set(report.plan.keep) == {digests[0], digests[1], digests[3]}
    assert store.has_blob(store.put_blob(b"shared layer").digest)
    assert len(store.blobs()) == before - 3  # manifest, config and own layer of #3
    assert report.freed_bytes > 0


def test_gc_spares_young_orphan_blobs() -> None:
    store = MemoryStore()
    artifact(store, 1)
    orphan = store.put_blob(b"a layer of a build in progress").digest
    report = gc(store, policy=Policy(), grace_seconds=900, now=store.now + 10)
    assert report.skipped_young == (orphan,)
    assert store.has_blob(orphan)
    later = gc(store, policy=Policy(), grace_seconds=900, now=store.now + 1000)
    assert orphan in later.plan.delete_blobs and not store.has_blob(orphan)
