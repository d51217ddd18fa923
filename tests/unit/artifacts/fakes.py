"""In-memory fakes of the artifact area's ports; each checks its own contract."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from kiln.core.artifacts.tags import Tag
from kiln.core.digest import Digest, digest_bytes
from kiln.errors import IntegrityError, InvalidInput, NotFound, Refused
from kiln.ports.artifacts import (
    ArtifactRecord,
    BlobInfo,
    Revocation,
    SourceState,
    TagRecord,
)
from tests.unit.recorder import MemoryRecorder

FakeRecorder = MemoryRecorder


@dataclass
class FrozenClock:
    at: datetime = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return 1000.0

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class FakeInstaller:
    """Installs a fixed tree (a fake package) instead of calling pip."""

    files: Mapping[str, bytes] = field(
        default_factory=lambda: {
            "fakepkg/__init__.py": b"VERSION = '1.0'\n",
            "fakepkg-1.0.dist-info/METADATA": b"Name: fakepkg\nVersion: 1.0\n",
        }
    )
    env: str = "python 3.11 fake"
    installs: int = 0

    def environment(self) -> str:
        return self.env

    def install(self, requirements: Path, target: Path) -> None:
        assert requirements.is_file()
        assert target.is_dir() and not any(target.iterdir()), "installs into an empty dir"
        self.installs += 1
        for rel, data in self.files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


@dataclass
class FakeSource:
    state_value: SourceState = field(
        default_factory=lambda: SourceState(
            revision="1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d",
            commit_time=1_700_000_000,
            remote=None,
            version="1.2.0",
        )
    )

    def state(self, directory: Path) -> SourceState:
        return self.state_value

    def last_change(self, directory: Path, path: Path) -> int | None:
        return self.state_value.commit_time

    def export(self, directory: Path, revision: str, dest: Path) -> Path:
        raise NotImplementedError


class _MemoryWriter:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._data = bytearray()
        self.committed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.committed, "write after commit"
        self._data += data

    def commit(self, expected: Digest | None = None) -> BlobInfo:
        assert not self.committed, "commit twice"
        digest = digest_bytes(bytes(self._data))
        if expected is not None and digest != expected:
            raise IntegrityError(f"received bytes hash to {digest}, not the expected {expected}")
        self._store.data.setdefault(digest, bytes(self._data))
        self._store.modified[digest] = self._store.now
        self.committed = True
        return BlobInfo(digest, len(self._data))


class _VerifiedBytes(io.BytesIO):
    def __init__(self, data: bytes, digest: Digest) -> None:
        super().__init__(data)
        self._digest = digest

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if not chunk and digest_bytes(self.getvalue()) != self._digest:
            raise IntegrityError(f"blob {self._digest} is corrupt")
        return chunk


@dataclass
class MemoryStore:
    """An in-memory ``ArtifactStore`` with the same promises as the local one."""

    data: dict[Digest, bytes] = field(default_factory=dict)
    modified: dict[Digest, float] = field(default_factory=dict)
    roots: dict[Digest, ArtifactRecord] = field(default_factory=dict)
    tag_records: dict[Tag, TagRecord] = field(default_factory=dict)
    revoked: dict[Digest, Revocation] = field(default_factory=dict)
    now: float = 1_700_000_000.0

    @contextlib.contextmanager
    def writer(self) -> Iterator[_MemoryWriter]:
        yield _MemoryWriter(self)

    def put_blob(self, data: bytes, expected: Digest | None = None) -> BlobInfo:
        writer = _MemoryWriter(self)
        writer.write(data)
        return writer.commit(expected)

    def has_blob(self, digest: Digest) -> bool:
        return digest in self.data

    def blob_size(self, digest: Digest) -> int:
        if digest not in self.data:
            raise NotFound(f"blob {digest} is not in the store")
        return len(self.data[digest])

    def read_blob(self, digest: Digest, *, limit: int = 16 << 20) -> bytes:
        with self.open_blob(digest) as stream:
            data = stream.read()
        assert len(data) <= limit
        return data

    @contextlib.contextmanager
    def open_blob(self, digest: Digest) -> Iterator[BinaryIO]:
        if digest not in self.data:
            raise NotFound(f"blob {digest} is not in the store")
        yield _VerifiedBytes(self.data[digest], digest)

    def blobs(self) -> frozenset[Digest]:
        return frozenset(self.data)

    def touch_blob(self, digest: Digest) -> None:
        if digest in self.data:
            self.modified[digest] = self.now

    def blob_modified(self, digest: Digest) -> float:
        return self.modified.get(digest, 0.0)

    def sweep(self, *, older_than: float) -> int:
        return 0

    def delete_blob(self, digest: Digest) -> int:
        return len(self.data.pop(digest, b""))

    def add_artifact(self, manifest: Digest, *, service: str, created: str) -> None:
        if manifest not in self.data:
            raise NotFound(f"manifest {manifest} is not in the store")
        self.roots.setdefault(manifest, ArtifactRecord(manifest, service, created))

    def artifacts(self) -> list[ArtifactRecord]:
        return sorted(self.roots.values(), key=lambda a: (a.created, a.digest))

    def forget_artifact(self, digest: Digest) -> None:
        self.roots.pop(digest, None)

    def tag(self, tag: Tag, digest: Digest, *, created: str) -> TagRecord:
        existing = self.tag_records.get(tag)
        if existing is not None and existing.digest != digest:
            raise Refused(
                f"tag {tag} already points at {existing.digest}; refusing to move it to {digest}"
            )
        return self.tag_records.setdefault(tag, TagRecord(tag, digest, created))

    def resolve(self, tag: Tag) -> Digest:
        if tag not in self.tag_records:
            raise NotFound(f"no tag {tag} in the store")
        return self.tag_records[tag].digest

    def tags(self) -> list[TagRecord]:
        return sorted(self.tag_records.values(), key=lambda r: (r.created, str(r.tag)))

    def revoke(self, digest: Digest, *, reason: str, actor: str, at: str) -> Revocation:
        if not reason.strip():
            raise InvalidInput("a revocation needs a reason")
        return self.revoked.setdefault(digest, Revocation(digest, reason, actor, at))

    def revocation(self, digest: Digest) -> Revocation | None:
        return self.revoked.get(digest)
