"""OCI image documents: config, manifest and index, as canonical JSON.

Canonical here means: keys sorted, no insignificant whitespace, UTF-8, so the
same content always has the same digest. Media types and fields follow the OCI
image spec v1.1 (``image-layout.md``, ``manifest.md``, ``config.md``,
``image-index.md``, ``annotations.md``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kiln.core.canonical import canonical_json as canonical_json
from kiln.core.digest import Digest, digest_bytes, parse_digest
from kiln.errors import IntegrityError

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYOUT_FILE = {"imageLayoutVersion": "1.0.0"}
REF_NAME = "org.opencontainers.image.ref.name"

# Labels and annotations kiln writes; other code reads them back by these names.
LABEL_SERVICE = "dev.kiln.service"
LABEL_VERSION = "dev.kiln.version"
LABEL_REVISION = "dev.kiln.revision"
LABEL_DIRTY = "dev.kiln.dirty"
LABEL_PYTHON = "dev.kiln.python"
LABEL_REQUIREMENTS = "dev.kiln.requirements"
LABEL_LAYERS = "dev.kiln.layers"
ANN_CREATED = "org.opencontainers.image.created"
ANN_REVISION = "org.opencontainers.image.revision"
ANN_SOURCE = "org.opencontainers.image.source"
ANN_VERSION = "org.opencontainers.image.version"
ANN_TITLE = "org.opencontainers.image.title"
ANN_LAYER_ROLE = "dev.kiln.layer"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, data: Any, *, what: str) -> Descriptor:
        if not isinstance(data, dict):
            raise IntegrityError(f"{what} is not a descriptor object")
        media, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media, str) or not isinstance(digest, str) or not isinstance(size, int):
            raise IntegrityError(f"{what} lacks mediaType, digest or size")
        ann = data.get("annotations") or {}
        if not isinstance(ann, dict):
            raise IntegrityError(f"{what} has malformed annotations")
        return cls(
            media_type=media,
            digest=parse_digest(digest, what=f"{what} digest"),
            size=size,
            annotations={str(k): str(v) for k, v in ann.items()},
        )


@dataclass(frozen=True)
class ImageConfig:
    """What kiln puts in the image config: the runtime contract of the artifact."""

    created: str
    architecture: str
    env: Sequence[str]
    cmd: Sequence[str]
    working_dir: str
    exposed_ports: Sequence[int]
    labels: Mapping[str, str]
    diff_ids: Sequence[Digest]
    history: Sequence[str] = ()

    def to_bytes(self) -> bytes:
        config: dict[str, Any] = {
            "Env": list(self.env),
            "Cmd": list(self.cmd),
            "WorkingDir": self.working_dir,
            "Labels": dict(self.labels),
        }
        if self.exposed_ports:
            config["ExposedPorts"] = {f"{p}/tcp": {} for p in sorted(self.exposed_ports)}
        doc: dict[str, Any] = {
            "created": self.created,
            "architecture": self.architecture,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
        }
        if self.history:
            doc["history"] = [
                {"created": self.created, "created_by": line} for line in self.history
            ]
        return canonical_json(doc)


def manifest_bytes(
    config: Descriptor, layers: Sequence[Descriptor], annotations: Mapping[str, str]
) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical_json(doc)


def index_bytes(manifests: Sequence[Descriptor]) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [m.to_json() for m in manifests],
        }
    )


@dataclass(frozen=True)
class Manifest:
    """A parsed image manifest: what kiln needs to walk an artifact."""

    digest: Digest
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str]

    @property
    def blobs(self) -> tuple[Digest, ...]:
        return (self.config.digest, *(layer.digest for layer in self.layers))


def parse_manifest(data: bytes, *, digest: Digest | None = None) -> Manifest:
    """Parse an OCI image manifest; every malformation is an ``IntegrityError``."""
    actual = digest_bytes(data)
    if digest is not None and actual != digest:
        raise IntegrityError(f"manifest bytes hash to {actual}, not {digest}")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"manifest {actual} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise IntegrityError(f"{actual} is not an OCI image manifest (schemaVersion 2)")
    media = doc.get("mediaType", MEDIA_MANIFEST)
    if media != MEDIA_MANIFEST:
        raise IntegrityError(f"{actual} has media type {media!r}, expected {MEDIA_MANIFEST}")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise IntegrityError(f"manifest {actual} has no layers list")
    ann = doc.get("annotations") or {}
    return Manifest(
        digest=actual,
        config=Descriptor.from_json(doc.get("config"), what="config"),
        layers=tuple(
            Descriptor.from_json(layer, what=f"layer {i}") for i, layer in enumerate(layers)
        ),
        annotations={str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {},
    )


def parse_config(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"image config is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise IntegrityError("image config is not a JSON object")
    return doc


def config_labels(config: Mapping[str, Any]) -> dict[str, str]:
    inner = config.get("config") or {}
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
