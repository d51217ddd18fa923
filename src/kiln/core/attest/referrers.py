"""OCI referrers: how an attestation travels beside its image in a registry.

Pure construction only; the registry adapter pushes what this module builds.

An attestation is pushed as an *artifact manifest* (OCI image spec v1.1,
``manifest.md``: the ``subject`` and ``artifactType`` properties, and
"Guidelines for Artifact Usage"):

- ``config`` is the empty descriptor (``application/vnd.oci.empty.v1+json``, the
  two bytes ``{}``; image spec ``descriptor.md``, "Empty Descriptor");
- one layer, the DSSE envelope itself (``application/vnd.dsse.envelope.v1+json``);
- ``subject`` is the descriptor of the image manifest being attested;
- ``artifactType`` is the envelope media type, and the annotation
  ``in-toto.io/predicate-type`` carries the predicate type so a client can filter
  without fetching the envelope.

A registry with the referrers API (distribution spec v1.1, "Listing Referrers",
``GET /v2/<name>/referrers/<digest>``) indexes such manifests by their
``subject``. For one without it, kiln uses the spec's **referrers tag schema**
(distribution spec v1.1, "Backwards Compatibility" → "Unavailable Referrers API"
→ "Referrers Tag Schema"): the tag ``<alg>-<ref>`` (for sha256,
``sha256-<64 hex>``) holds an image index listing every referrer's descriptor.
``add_to_referrers_index`` is the pure step of the spec's client procedure:
start from the existing index (or an empty one on 404), skip a descriptor that is
already listed, append the new one with the manifest's ``artifactType`` and
annotations, and push the result back under the same tag.

kiln deliberately follows the OCI tag schema rather than cosign's
``sha256-<hex>.att`` convention (a single image whose layers accumulate
attestations): the OCI schema is what ORAS, notation and registries implementing
the v1.1 upgrade procedure read, and its index is rebuilt by the same rules the
referrers API uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kiln.core.attest.dsse import loads_strict
from kiln.core.digest import Digest, digest_bytes, hex_of, is_digest
from kiln.errors import InvalidInput

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
EMPTY_CONFIG = b"{}"
MAX_ENVELOPE = 16 << 20  # an attestation larger than this is refused before download

_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Descriptor:
        return cls(media_type, digest_bytes(data), len(data))


@dataclass(frozen=True)
class ReferrerArtifact:
    """A manifest ready to push, its descriptor, and the blobs it references."""

    manifest: bytes
    descriptor: Descriptor
    blobs: Mapping[Digest, bytes]


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def attestation_manifest(
    subject: Descriptor, envelope: bytes, predicate_type: str
) -> ReferrerArtifact:
    """The artifact manifest that attaches ``envelope`` to ``subject``."""
    config = Descriptor.of(OCI_EMPTY, EMPTY_CONFIG)
    layer = Descriptor(
        DSSE_ENVELOPE,
        digest_bytes(envelope),
        len(envelope),
        annotations={PREDICATE_ANNOTATION: predicate_type},
    )
    annotations = {PREDICATE_ANNOTATION: predicate_type}
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": DSSE_ENVELOPE,
        "config": config.to_json(),
        "layers": [layer.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
        "annotations": annotations,
    }
    manifest = _canonical(doc)
    descriptor = Descriptor(
        OCI_MANIFEST,
        digest_bytes(manifest),
        len(manifest),
        artifact_type=DSSE_ENVELOPE,
        annotations=annotations,
    )
    return ReferrerArtifact(
        manifest, descriptor, {config.digest: EMPTY_CONFIG, layer.digest: envelope}
    )


def referrers_tag(subject: Digest) -> str:
    """The fallback tag ``<alg>-<ref>`` of the referrers tag schema (ref cut to 64 chars)."""
    if not is_digest(subject):
        raise InvalidInput(f"{subject!r} is not a sha256 digest")
    tag = f"sha256-{hex_of(subject)[:64]}"
    if not _TAG.match(tag):  # pragma: no cover - the digest grammar guarantees it
        raise InvalidInput(f"{tag!r} is not a valid tag")
    return tag


def empty_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def parse_index(data: bytes) -> dict[str, Any]:
    """An image index from bytes; anything else under the tag is refused (spec: report failure)."""
    try:
        doc = loads_strict(data)
    except ValueError as exc:
        raise InvalidInput(f"the referrers tag holds invalid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("mediaType") != OCI_INDEX:
        raise InvalidInput(
            "the referrers tag holds something other than an OCI image index",
            hint="another tool may be using the tag; kiln will not overwrite it",
        )
    if not isinstance(doc.get("manifests"), list):
        raise InvalidInput("the referrers index has no manifests list")
    return doc


def add_to_referrers_index(existing: bytes | None, referrer: Descriptor) -> bytes | None:
    """The updated index to push under the fallback tag, or ``None`` if already listed."""
    doc = empty_index() if existing is None else parse_index(existing)
    manifests: list[Any] = list(doc["manifests"])
    if any(isinstance(m, dict) and m.get("digest") == referrer.digest for m in manifests):
        return None
    manifests.append(referrer.to_json())
    return _canonical({**doc, "manifests": manifests})


def referrers_in(index: bytes, *, artifact_type: str | None = None) -> list[Descriptor]:
    """Descriptors listed in an index (from the API or the tag), optionally filtered."""
    doc = parse_index(index)
    found: list[Descriptor] = []
    for item in doc["manifests"]:
        if not isinstance(item, dict):
            continue
        digest = item.get("digest")
        size = item.get("size")
        media = item.get("mediaType")
        if not (isinstance(digest, str) and is_digest(digest)):
            continue
        if not isinstance(size, int) or not isinstance(media, str):
            continue
        kind = item.get("artifactType")
        if artifact_type and kind != artifact_type:
            continue
        notes = item.get("annotations") or {}
        found.append(
            Descriptor(
                media,
                Digest(digest),
                size,
                kind if isinstance(kind, str) else None,
                {k: v for k, v in notes.items() if isinstance(v, str)},
            )
        )
    return found


def envelope_layer(manifest: bytes, subject: Digest) -> Descriptor:
    """The DSSE envelope descriptor of a referrer manifest that attests ``subject``.

    Everything fetched from a registry is untrusted: the manifest must be an OCI
    image manifest whose ``subject`` is exactly ``subject`` and whose single layer
    is a DSSE envelope with a valid digest; otherwise it is refused.
    """
    try:
        doc = loads_strict(manifest)
    except ValueError as exc:
        raise InvalidInput(f"a referrer manifest is invalid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("mediaType") != OCI_MANIFEST:
        raise InvalidInput("a referrer is not an OCI image manifest")
    about = doc.get("subject")
    if not isinstance(about, dict) or about.get("digest") != subject:
        raise InvalidInput(f"a referrer manifest does not name {subject} as its subject")
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict):
        raise InvalidInput("a referrer manifest must hold exactly one layer")
    layer = layers[0]
    digest, size = layer.get("digest"), layer.get("size")
    if layer.get("mediaType") != DSSE_ENVELOPE:
        raise InvalidInput(f"a referrer layer is a {layer.get('mediaType')!r}, not a DSSE envelope")
    if not (isinstance(digest, str) and is_digest(digest)) or not isinstance(size, int):
        raise InvalidInput("a referrer layer has no valid digest and size")
    if size < 0 or size > MAX_ENVELOPE:
        raise InvalidInput(f"a referrer envelope of {size} bytes is out of bounds")
    return Descriptor(DSSE_ENVELOPE, Digest(digest), size)
