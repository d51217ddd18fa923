"""The local content-addressed store: ``.kiln/store``, an OCI image layout.

Layout::

    oci-layout, index.json         # a valid OCI layout: skopeo/podman read it
    blobs/sha256/<hex>             # write once, mode 0444, verified on every read
    tmp/                           # blobs being written (same filesystem: rename)
    artifacts/<hex>.json           # image manifests held as roots
    tags/<service>/<tag>.json      # created with O_EXCL-like link: never replaced
    revocations/<hex>.json         # permanent

A blob goes to ``tmp/`` first, is fsynced, checked against its expected digest
and linked into place; any failure removes the temp file, so no partial blob is
ever visible. ``index.json`` is derived from the tag files and rewritten
atomically after each change; nothing reads it back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kiln.core.artifacts.oci import (
    LAYOUT_FILE,
    MEDIA_MANIFEST,
    REF_NAME,
    Descriptor,
    canonical_json,
    index_bytes,
)
from kiln.core.artifacts.tags import Tag, parse_tag
from kiln.core.digest import Digest, hex_of, is_digest, parse_digest
from kiln.errors import IntegrityError, InvalidInput, NotFound, Refused
from kiln.fsio import fsync_dir, write_atomic, write_new
from kiln.ports.artifacts import ArtifactRecord, BlobInfo, Revocation, TagRecord

_BUFFER = 1 << 20


class _Writer:
    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self._size = 0
        name = f"blob-{os.getpid()}-{secrets.token_hex(8)}"
        self.tmp = store.root / "tmp" / name
        self._file: BinaryIO | None = open(self.tmp, "xb", buffering=_BUFFER)  # noqa: SIM115
        self.committed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._file is None:
            raise RuntimeError("write after commit or abort")
        self._hash.update(data)
        self._file.write(data)
        self._size += len(data)

    def commit(self, expected: Digest | None = None) -> BlobInfo:
        handle = self._file
        if handle is None:
            raise RuntimeError("commit twice")
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        self._file = None
        digest = Digest("sha256:" + self._hash.hexdigest())
        if expected is not None and digest != expected:
            raise IntegrityError(
                f"received bytes hash to {digest}, not the expected {expected}",
                hint="the source is corrupt or was changed in transit; nothing was stored",
            )
        self._store._publish(self.tmp, digest)
        self.committed = True
        return BlobInfo(digest, self._size)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


class _VerifyingReader(io.RawIOBase):
    """Reads a blob file and refuses, at its end, bytes that do not match the name."""

    def __init__(self, handle: io.FileIO, digest: Digest) -> None:
        self._handle = handle
        self._digest = digest
        self._hash = hashlib.sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = self._handle.readinto(view) or 0
        if count:
            self._hash.update(view[:count])
            return count
        self._check()
        return 0

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self._digest:
            raise IntegrityError(
                f"blob {self._digest} is corrupt: its bytes hash to {actual}",
                hint="remove it from the store and pull or rebuild the artifact",
            )

    def close(self) -> None:
        self._handle.close()
        super().close()


class LocalStore:
    """``ArtifactStore`` on the local filesystem (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("blobs/sha256", "tmp", "artifacts", "tags", "revocations"):
            (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        layout = root / "oci-layout"
        if not layout.exists():
            write_atomic(layout, canonical_json(LAYOUT_FILE))
        if not (root / "index.json").exists():
            write_atomic(root / "index.json", index_bytes([]))

    # --- blobs ---------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / "sha256" / hex_of(digest)

    def _publish(self, tmp: Path, digest: Digest) -> None:
        target = self.blob_path(digest)
        tmp.chmod(0o444)
        try:
            os.link(tmp, target)
        except FileExistsError:
            pass  # written once already: same name, same bytes
        else:
            fsync_dir(target.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @contextlib.contextmanager
    def writer(self) -> Iterator[_Writer]:
        writer = _Writer(self)
        try:
            yield writer
        finally:
            if not writer.committed:
                writer.abort()

    def put_blob(self, data: bytes, expected: Digest | None = None) -> BlobInfo:
        with self.writer() as writer:
            writer.write(data)
            return writer.commit(expected)

    def has_blob(self, digest: Digest) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: Digest) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None

    @contextlib.contextmanager
    def open_blob(self, digest: Digest) -> Iterator[BinaryIO]:
        try:
            handle = open(self.blob_path(digest), "rb", buffering=0)  # noqa: SIM115
        except FileNotFoundError:
            raise NotFound(
                f"blob {digest} is not in the store",
                hint="pull the artifact again or rebuild it",
            ) from None
        reader = _VerifyingReader(handle, digest)
        stream = io.BufferedReader(reader, buffer_size=_BUFFER)
        try:
            yield stream
        finally:
            stream.close()

    def read_blob(self, digest: Digest, *, limit: int = 16 << 20) -> bytes:
        with self.open_blob(digest) as stream:
            data = stream.read(limit + 1)
            if len(data) > limit:
                raise IntegrityError(f"blob {digest} is larger than {limit} bytes")
            stream.read()  # reach the end so the digest is checked
        return data

    def blobs(self) -> frozenset[Digest]:
        return frozenset(
            Digest("sha256:" + p.name)
            for p in (self.root / "blobs" / "sha256").iterdir()
            if is_digest("sha256:" + p.name)
        )

    def touch_blob(self, digest: Digest) -> None:
        path = self.blob_path(digest)
        with contextlib.suppress(FileNotFoundError):
            # gc's grace period is minutes: refreshing an mtime younger than a minute
            # would only cost a metadata write per cached layer per build
            if time.time() - path.stat().st_mtime > 60:
                os.utime(path)

    def blob_modified(self, digest: Digest) -> float:
        try:
            return self.blob_path(digest).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def sweep(self, *, older_than: float) -> int:
        freed = 0
        for path in (self.root / "tmp").iterdir():
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                if st.st_mtime < older_than:
                    path.unlink()
                    freed += st.st_size
        return freed

    def delete_blob(self, digest: Digest) -> int:
        path = self.blob_path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    # --- artifacts -----------------------------------------------------------------

    def add_artifact(self, manifest: Digest, *, service: str, created: str) -> None:
        if not self.has_blob(manifest):
            raise NotFound(f"manifest {manifest} is not in the store")
        record = {"digest": manifest, "service": service, "created": created}
        write_new(self.root / "artifacts" / f"{hex_of(manifest)}.json", canonical_json(record))

    def artifacts(self) -> list[ArtifactRecord]:
        out: list[ArtifactRecord] = []
        for path in sorted((self.root / "artifacts").glob("*.json")):
            doc = _load(path)
            out.append(
                ArtifactRecord(
                    digest=parse_digest(str(doc.get("digest")), what=f"{path}"),
                    service=str(doc.get("service", "")),
                    created=str(doc.get("created", "")),
                )
            )
        return sorted(out, key=lambda a: (a.created, a.digest))

    def forget_artifact(self, digest: Digest) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / "artifacts" / f"{hex_of(digest)}.json").unlink()
        self._write_index()

    # --- tags ----------------------------------------------------------------------

    def _tag_path(self, tag: Tag) -> Path:
        return self.root / "tags" / tag.repository / f"{tag.name}.json"

    def tag(self, tag: Tag, digest: Digest, *, created: str) -> TagRecord:
        path = self._tag_path(tag)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        record = {"tag": str(tag), "digest": digest, "created": created}
        if not write_new(path, canonical_json(record), mode=0o444):
            existing = self.resolve(tag)
            if existing != digest:
                raise Refused(
                    f"tag {tag} already points at {existing}; refusing to move it to {digest}",
                    hint="tags never move: build a new version, or refer to the digest",
                )
            return self._record(path)
        self._write_index()
        return TagRecord(tag, digest, created)

    def _record(self, path: Path) -> TagRecord:
        doc = _load(path)
        return TagRecord(
            tag=parse_tag(str(doc.get("tag"))),
            digest=parse_digest(str(doc.get("digest")), what=f"{path}"),
            created=str(doc.get("created", "")),
        )

    def resolve(self, tag: Tag) -> Digest:
        path = self._tag_path(tag)
        if not path.is_file():
            raise NotFound(f"no tag {tag} in the store", hint="`kiln artifacts list` shows tags")
        return self._record(path).digest

    def tags(self) -> list[TagRecord]:
        return sorted(
            (self._record(p) for p in (self.root / "tags").glob("*/*.json")),
            key=lambda r: (r.created, str(r.tag)),
        )

    def _write_index(self) -> None:
        present = {a.digest for a in self.artifacts()}
        entries = [
            Descriptor(
                media_type=MEDIA_MANIFEST,
                digest=record.digest,
                size=self.blob_size(record.digest),
                annotations={REF_NAME: str(record.tag)},
            )
            for record in self.tags()
            if record.digest in present
        ]
        write_atomic(self.root / "index.json", index_bytes(entries))

    # --- revocations ---------------------------------------------------------------

    def revoke(self, digest: Digest, *, reason: str, actor: str, at: str) -> Revocation:
        if not reason.strip():
            raise InvalidInput("a revocation needs a reason", hint="pass --reason TEXT")
        record = {"digest": digest, "reason": reason, "actor": actor, "at": at}
        path = self.root / "revocations" / f"{hex_of(digest)}.json"
        if not write_new(path, canonical_json(record), mode=0o444):
            existing = self.revocation(digest)
            if existing is not None:
                return existing
        return Revocation(digest, reason, actor, at)

    def revocation(self, digest: Digest) -> Revocation | None:
        path = self.root / "revocations" / f"{hex_of(digest)}.json"
        if not path.is_file():
            return None
        doc = _load(path)
        return Revocation(
            digest=digest,
            reason=str(doc.get("reason", "")),
            actor=str(doc.get("actor", "")),
            at=str(doc.get("at", "")),
        )


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"store record {path} is unreadable: {exc}") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"store record {path} is not a JSON object")
    return doc
