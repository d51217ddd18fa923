"""``kiln rebuild --verify``: build an artifact again from its recorded inputs and compare.

The recorded inputs are in the image itself (labels ``dev.kiln.revision``,
``dev.kiln.version``, ``dev.kiln.epoch``, ``dev.kiln.deps-epoch``; annotation
``org.opencontainers.image.source``). The revision is exported from git into a
temp directory (``git archive``: no untracked or ignored files can leak in)
and built into a throwaway store with an empty cache, so nothing is reused.
If the digests differ, each layer pair is listed member by member and the
differences are named: which layer, which files, and how (content, mode,
size, mtime, link target), plus the config labels that differ.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.core.artifacts.oci import (
    ANN_SOURCE,
    LABEL_DIRTY,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_VERSION,
    config_labels,
)
from kiln.core.digest import Digest
from kiln.errors import InvalidInput, Refused
from kiln.ports.artifacts import ArtifactStore, SourceRepo
from kiln.services.artifacts import load_config, load_manifest, resolve_ref
from kiln.services.build import LABEL_DEPS_EPOCH, LABEL_EPOCH, Builder, BuildInputs
from kiln.services.spec import read_spec

_READ = 1 << 20


@dataclass(frozen=True)
class LayerDifference:
    index: int
    role: str
    expected: Digest | None
    rebuilt: Digest | None
    files: dict[str, str] = field(default_factory=dict)  # path -> how it differs


@dataclass(frozen=True)
class RebuildReport:
    expected: Digest
    rebuilt: Digest
    revision: str
    layers: tuple[LayerDifference, ...]
    labels: dict[str, tuple[str | None, str | None]]

    @property
    def matches(self) -> bool:
        return self.expected == self.rebuilt

    def to_json(self) -> dict[str, Any]:
        return {
            "matches": self.matches,
            "expected": self.expected,
            "rebuilt": self.rebuilt,
            "revision": self.revision,
            "layers": [
                {
                    "index": d.index,
                    "role": d.role,
                    "expected": d.expected,
                    "rebuilt": d.rebuilt,
                    "files": d.files,
                }
                for d in self.layers
            ],
            "labels": {k: {"expected": a, "rebuilt": b} for k, (a, b) in self.labels.items()},
        }


def rebuild_verify(
    store: ArtifactStore,
    ref: str,
    *,
    source: SourceRepo,
    repo_dir: Path,
    spec_name: str,
    make_builder: Callable[[Path], Builder],
) -> RebuildReport:
    """Rebuild ``ref`` from its recorded revision; ``spec_name`` is relative to ``repo_dir``."""
    digest = resolve_ref(store, ref)
    manifest = load_manifest(store, digest)
    labels = config_labels(load_config(store, manifest))
    revision = labels.get(LABEL_REVISION, "")
    if labels.get(LABEL_DIRTY) == "true" or not revision:
        raise Refused(
            f"{digest} was built from a dirty tree (or outside git); its inputs were not recorded",
            hint="only artifacts built from a clean commit can be rebuilt and verified",
        )
    try:
        inputs = BuildInputs(
            service=labels[LABEL_SERVICE],
            version=labels[LABEL_VERSION],
            revision=revision,
            dirty=False,
            remote=manifest.annotations.get(ANN_SOURCE),
            epoch=int(labels[LABEL_EPOCH]),
            deps_epoch=int(labels[LABEL_DEPS_EPOCH]),
        )
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"{digest} lacks the build label {exc}; kiln did not build it") from None
    with tempfile.TemporaryDirectory(prefix="kiln-rebuild-") as tmp:
        work = Path(tmp)
        (work / "src").mkdir()
        tree = source.export(repo_dir, revision, work / "src")
        spec_path = tree / spec_name
        spec = read_spec(spec_path)
        builder = make_builder(work / "state")
        result = builder.build(spec, spec_path.parent, inputs=inputs, tag=False, record=False)
        rebuilt_manifest = load_manifest(builder.store, result.digest)
        rebuilt_labels = config_labels(load_config(builder.store, rebuilt_manifest))
        differences: list[LayerDifference] = []
        count = max(len(manifest.layers), len(rebuilt_manifest.layers))
        for index in range(count):
            old = manifest.layers[index] if index < len(manifest.layers) else None
            new = rebuilt_manifest.layers[index] if index < len(rebuilt_manifest.layers) else None
            if old is not None and new is not None and old.digest == new.digest:
                continue
            either = old or new
            role = either.annotations.get("dev.kiln.layer", "") if either else ""
            files = _compare_layers(
                _listing(store, old.digest) if old else {},
                _listing(builder.store, new.digest) if new else {},
            )
            differences.append(
                LayerDifference(
                    index, role, old.digest if old else None, new.digest if new else None, files
                )
            )
    label_diff = {
        k: (labels.get(k), rebuilt_labels.get(k))
        for k in sorted(set(labels) | set(rebuilt_labels))
        if labels.get(k) != rebuilt_labels.get(k)
    }
    return RebuildReport(digest, result.digest, revision, tuple(differences), label_diff)


def _listing(store: ArtifactStore, digest: Digest) -> dict[str, tuple[str, ...]]:
    """Each member of a layer: (type, mode, size, mtime, link target, content digest)."""
    out: dict[str, tuple[str, ...]] = {}
    with store.open_blob(digest) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for info in tar:
            content = ""
            if info.isfile():
                handle = tar.extractfile(info)
                hasher = hashlib.sha256()
                while handle is not None and (chunk := handle.read(_READ)):
                    hasher.update(chunk)
                content = hasher.hexdigest()
            out[info.name] = (
                info.type.decode(errors="replace"),
                oct(info.mode),
                str(info.size),
                str(info.mtime),
                info.linkname,
                content,
            )
    return out


_ASPECTS = ("type", "mode", "size", "mtime", "link target", "content")


def _compare_layers(
    expected: dict[str, tuple[str, ...]], rebuilt: dict[str, tuple[str, ...]]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(set(expected) | set(rebuilt)):
        old, new = expected.get(path), rebuilt.get(path)
        if old is None:
            out[path] = "only in the rebuild"
        elif new is None:
            out[path] = "missing from the rebuild"
        elif old != new:
            out[path] = ", ".join(a for a, x, y in zip(_ASPECTS, old, new, strict=True) if x != y)
    return out
