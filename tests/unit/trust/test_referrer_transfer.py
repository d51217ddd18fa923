"""Pushing and pulling attestations as referrers, against an in-memory registry.

The fake speaks both dialects: with ``api=True`` it indexes every manifest that
has a ``subject`` (distribution spec v1.1 "Listing Referrers"), without it it
answers "unsupported" and kiln must use the referrers tag schema. The real
registry (no API) is exercised in tests/integration/trust.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from kiln.core.attest.predicates import CYCLONEDX_BOM
from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.referrers import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    attestation_manifest,
    referrers_in,
    referrers_tag,
)
from kiln.core.attest.statement import statement
from kiln.core.digest import Digest, digest_bytes, is_digest
from kiln.errors import IntegrityError, InvalidInput, NotFound, Temporary
from kiln.ports.artifacts import BlobInfo
from kiln.services.attest import attest, pull_attestations, push_attestations
from tests.unit.trust.fakes import ARTIFACT, BUILDER, OTHER, MemoryStore

SUBJECT = Descriptor(OCI_MANIFEST, ARTIFACT, 123)
REPO = "hello"


@dataclass
class FakeRegistry:
    """A ``Registry`` in dicts; digests are checked the way a registry checks them."""

    api: bool = False
    blobs: dict[Digest, bytes] = field(default_factory=dict)
    manifests: dict[Digest, tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, Digest] = field(default_factory=dict)
    puts: int = 0

    def has_blob(self, repository: str, digest: Digest) -> bool:
        return digest in self.blobs

    def push_blob(self, repository: str, info: BlobInfo, chunks: Iterator[bytes]) -> None:
        data = b"".join(chunks)
        assert digest_bytes(data) == info.digest and len(data) == info.size
        self.blobs[info.digest] = data

    @contextlib.contextmanager
    def pull_blob(self, repository: str, digest: Digest) -> Iterator[Iterator[bytes]]:
        if digest not in self.blobs:
            raise NotFound(f"no blob {digest}")
        yield iter([self.blobs[digest]])

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> Digest:
        digest = digest_bytes(data)
        if is_digest(reference):
            assert reference == digest
        else:
            assert self.tags.get(reference, digest) == digest, "tags never move"
            self.tags[reference] = digest
        self.manifests[digest] = (data, media_type)
        self.puts += 1
        return digest

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        digest = Digest(reference) if is_digest(reference) else self.tags.get(reference)
        if digest is None or digest not in self.manifests:
            raise NotFound(f"no manifest {reference}")
        data, media = self.manifests[digest]
        if digest_bytes(data) != digest:
            raise IntegrityError("manifest bytes do not match")  # as the real client does
        return data, media

    def resolve_tag(self, repository: str, tag: str) -> Digest | None:
        if is_digest(tag):
            return Digest(tag) if tag in self.manifests else None
        return self.tags.get(tag)

    def referrers(self, repository: str, subject: Digest) -> bytes | None:
        if not self.api:
            return None
        listed = []
        for digest, (data, media) in sorted(self.manifests.items()):
            doc = json.loads(data)
            if media == OCI_MANIFEST and doc.get("subject", {}).get("digest") == subject:
                entry = {"mediaType": media, "digest": digest, "size": len(data)}
                entry["artifactType"] = doc.get("artifactType")
                entry["annotations"] = doc.get("annotations", {})
                listed.append(entry)
        return json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed}
        ).encode()

    def replace_tag(
        self, repository: str, tag: str, data: bytes, media_type: str, *, expected: Digest | None
    ) -> Digest:
        if self.tags.get(tag) != expected:
            raise Temporary("moved", delay=0)
        digest = digest_bytes(data)
        self.manifests[digest] = (data, media_type)
        self.tags[tag] = digest
        return digest

    def close(self) -> None:
        pass


def _signed(store: MemoryStore, subject: Digest = ARTIFACT) -> None:
    prov = statement([("hello", subject)], SLSA_PROVENANCE_V1, {"buildDefinition": {}})
    attest(prov, signer=BUILDER, store=store)
    bom = statement([("hello", subject)], CYCLONEDX_BOM, {"bomFormat": "CycloneDX"})
    attest(bom, signer=BUILDER, store=store)


def test_with_the_referrers_api_no_fallback_tag_is_written() -> None:
    store, registry = MemoryStore(), FakeRegistry(api=True)
    _signed(store)
    report = push_attestations(store, registry, REPO, SUBJECT)
    assert report.to_json() == {"transferred": 2, "alreadyThere": 0, "via": "referrers-api"}
    assert registry.tags == {}
    again = push_attestations(store, registry, REPO, SUBJECT)
    assert (again.transferred, again.already) == (0, 2)

    fresh = MemoryStore()
    pulled = pull_attestations(fresh, registry, REPO, ARTIFACT)
    assert pulled.to_json() == {"transferred": 2, "alreadyThere": 0, "via": "referrers-api"}
    assert fresh.for_subject(ARTIFACT) == store.for_subject(ARTIFACT)
    assert pull_attestations(fresh, registry, REPO, ARTIFACT).already == 2


def test_the_tag_schema_index_keeps_other_entries_and_lists_each_once() -> None:
    store, registry = MemoryStore(), FakeRegistry()
    foreign = {"mediaType": OCI_MANIFEST, "digest": OTHER, "size": 9, "artifactType": "x/y"}
    existing = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [foreign]})
    registry.put_manifest(REPO, referrers_tag(ARTIFACT), existing.encode(), OCI_INDEX)
    _signed(store)
    assert push_attestations(store, registry, REPO, SUBJECT).via == "tag-schema"
    index, _ = registry.get_manifest(REPO, referrers_tag(ARTIFACT))
    listed = [d.digest for d in referrers_in(index)]
    assert listed[0] == OTHER and len(listed) == 3
    push_attestations(store, registry, REPO, SUBJECT)
    assert registry.get_manifest(REPO, referrers_tag(ARTIFACT))[0] == index

    fresh = MemoryStore()
    assert pull_attestations(fresh, registry, REPO, ARTIFACT).transferred == 2  # x/y skipped
    assert len(fresh.for_subject(ARTIFACT)) == 2


def test_nothing_to_push_writes_nothing_and_nothing_to_pull_is_empty() -> None:
    registry = FakeRegistry()
    assert push_attestations(MemoryStore(), registry, REPO, SUBJECT).transferred == 0
    assert registry.tags == {} and registry.manifests == {}
    assert pull_attestations(MemoryStore(), registry, REPO, ARTIFACT).transferred == 0


def test_a_tag_holding_something_else_is_not_overwritten() -> None:
    store, registry = MemoryStore(), FakeRegistry()
    registry.put_manifest(REPO, referrers_tag(ARTIFACT), b'{"mediaType":"other"}', "x/y")
    _signed(store)
    with pytest.raises(InvalidInput, match="other than an OCI image index"):
        push_attestations(store, registry, REPO, SUBJECT)


def test_a_corrupt_stored_envelope_is_not_pushed() -> None:
    store, registry = MemoryStore(), FakeRegistry()
    _signed(store)
    first = store.for_subject(ARTIFACT)[0].digest
    store.blobs[first] = store.blobs[first] + b" "
    with pytest.raises(IntegrityError, match="does not match its digest"):
        push_attestations(store, registry, REPO, SUBJECT)
    assert registry.manifests == {}


def _pushed() -> tuple[MemoryStore, FakeRegistry]:
    store, registry = MemoryStore(), FakeRegistry()
    _signed(store)
    push_attestations(store, registry, REPO, SUBJECT)
    return store, registry


def test_a_changed_envelope_blob_refuses_the_whole_pull() -> None:
    _, registry = _pushed()
    victim = sorted(d for d, b in registry.blobs.items() if b.startswith(b'{"payload'))[0]
    registry.blobs[victim] = registry.blobs[victim].replace(b"payload", b"paylaod", 1)
    fresh = MemoryStore()
    with pytest.raises(IntegrityError, match=f"referrer blob {victim} does not match"):
        pull_attestations(fresh, registry, REPO, ARTIFACT)
    assert fresh.blobs == {}


def test_a_referrer_about_another_subject_is_refused() -> None:
    _, registry = _pushed()
    # a well-formed referrer of ARTIFACT whose statement is about OTHER, listed in the index
    other = MemoryStore()
    _signed(other, OTHER)
    raw = other.for_subject(OTHER)[0].raw
    art = attestation_manifest(SUBJECT, raw, SLSA_PROVENANCE_V1)
    for digest, data in art.blobs.items():
        registry.blobs[digest] = data
    registry.put_manifest(REPO, art.descriptor.digest, art.manifest, OCI_MANIFEST)
    tag = referrers_tag(ARTIFACT)
    index = json.loads(registry.get_manifest(REPO, tag)[0])
    index["manifests"].append(art.descriptor.to_json())
    registry.replace_tag(
        REPO, tag, json.dumps(index).encode(), OCI_INDEX, expected=registry.tags[tag]
    )
    with pytest.raises(IntegrityError, match="statement about another subject"):
        pull_attestations(MemoryStore(), registry, REPO, ARTIFACT)


def test_an_index_entry_whose_manifest_names_another_subject_is_refused() -> None:
    _, registry = _pushed()
    other = MemoryStore()
    _signed(other, OTHER)
    art = attestation_manifest(
        Descriptor(OCI_MANIFEST, OTHER, 5), other.for_subject(OTHER)[0].raw, SLSA_PROVENANCE_V1
    )
    registry.put_manifest(REPO, art.descriptor.digest, art.manifest, OCI_MANIFEST)
    tag = referrers_tag(ARTIFACT)
    index = json.loads(registry.get_manifest(REPO, tag)[0])
    index["manifests"].append(art.descriptor.to_json())
    registry.replace_tag(
        REPO, tag, json.dumps(index).encode(), OCI_INDEX, expected=registry.tags[tag]
    )
    with pytest.raises(IntegrityError, match=f"does not name {ARTIFACT} as its subject"):
        pull_attestations(MemoryStore(), registry, REPO, ARTIFACT)
