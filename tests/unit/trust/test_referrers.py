"""OCI referrers: the artifact manifest that carries an attestation, and the tag fallback."""

from __future__ import annotations

import json

import pytest

from kiln.core.attest.provenance import SLSA_PROVENANCE_V1
from kiln.core.attest.referrers import (
    DSSE_ENVELOPE,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    PREDICATE_ANNOTATION,
    Descriptor,
    add_to_referrers_index,
    attestation_manifest,
    referrers_in,
    referrers_tag,
)
from kiln.core.digest import digest_bytes, hex_of
from kiln.errors import InvalidInput

IMAGE = Descriptor(OCI_MANIFEST, digest_bytes(b"an image manifest"), 17)
ENVELOPE = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}'
# The image spec's empty descriptor: sha256 of the two bytes "{}" (descriptor.md).
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def test_the_artifact_manifest_points_at_its_subject_and_carries_the_envelope() -> None:
    artifact = attestation_manifest(IMAGE, ENVELOPE, SLSA_PROVENANCE_V1)
    doc = json.loads(artifact.manifest)
    assert doc == {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": DSSE_ENVELOPE,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [
            {
                "mediaType": DSSE_ENVELOPE,
                "digest": digest_bytes(ENVELOPE),
                "size": len(ENVELOPE),
                "annotations": {PREDICATE_ANNOTATION: SLSA_PROVENANCE_V1},
            }
        ],
        "subject": {"mediaType": OCI_MANIFEST, "digest": IMAGE.digest, "size": 17},
        "annotations": {PREDICATE_ANNOTATION: SLSA_PROVENANCE_V1},
    }
    assert artifact.descriptor.digest == digest_bytes(artifact.manifest)
    assert artifact.descriptor.size == len(artifact.manifest)
    assert artifact.blobs == {EMPTY_DIGEST: b"{}", digest_bytes(ENVELOPE): ENVELOPE}


def test_the_manifest_is_deterministic() -> None:
    one = attestation_manifest(IMAGE, ENVELOPE, SLSA_PROVENANCE_V1)
    two = attestation_manifest(IMAGE, ENVELOPE, SLSA_PROVENANCE_V1)
    assert one.manifest == two.manifest


def test_the_fallback_tag_follows_the_referrers_tag_schema() -> None:
    assert referrers_tag(IMAGE.digest) == f"sha256-{hex_of(IMAGE.digest)}"
    with pytest.raises(InvalidInput):
        referrers_tag("sha256:xyz")  # type: ignore[arg-type]


def test_the_fallback_index_starts_empty_and_lists_each_referrer_once() -> None:
    artifact = attestation_manifest(IMAGE, ENVELOPE, SLSA_PROVENANCE_V1)
    first = add_to_referrers_index(None, artifact.descriptor)
    assert first is not None
    doc = json.loads(first)
    assert doc["mediaType"] == OCI_INDEX
    assert doc["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": artifact.descriptor.digest,
            "size": artifact.descriptor.size,
            "artifactType": DSSE_ENVELOPE,
            "annotations": {PREDICATE_ANNOTATION: SLSA_PROVENANCE_V1},
        }
    ]
    assert add_to_referrers_index(first, artifact.descriptor) is None
    other = attestation_manifest(IMAGE, ENVELOPE + b" ", "https://cyclonedx.org/bom")
    second = add_to_referrers_index(first, other.descriptor)
    assert second is not None
    assert [d.digest for d in referrers_in(second)] == [
        artifact.descriptor.digest,
        other.descriptor.digest,
    ]
    assert referrers_in(second, artifact_type="application/other") == []


def test_a_tag_holding_something_else_is_not_overwritten() -> None:
    with pytest.raises(InvalidInput, match="other than an OCI image index"):
        add_to_referrers_index(b'{"mediaType": "' + OCI_MANIFEST.encode() + b'"}', IMAGE)
    with pytest.raises(InvalidInput, match="invalid JSON"):
        add_to_referrers_index(b"{", IMAGE)


def test_malformed_entries_in_an_index_are_skipped_when_reading() -> None:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                "junk",
                {"digest": "sha256:nothex", "size": 1, "mediaType": OCI_MANIFEST},
                {"digest": IMAGE.digest, "size": "1", "mediaType": OCI_MANIFEST},
                IMAGE.to_json(),
            ],
        }
    ).encode()
    assert referrers_in(index) == [IMAGE]
