"""Unpacking artifacts for runtimes: safe, read-only, shared by digest, verifiable.

``unpack`` streams each layer from the store (its digest is checked at the end
of the stream), judges every member with ``kiln.core.artifacts.unpack_rules``
before creating it, builds the tree in a temp directory beside its final
place, makes it read-only, records its listing and tree digest in
``tree.json`` and renames it into ``instances/<hex>/``. Instances of one digest
share that tree; ``verify_unpacked`` re-hashes it and names what changed.
``dev/``, ``proc/`` and ``tmp/`` are created empty as mount points.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import secrets
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO

from kiln.core.artifacts.oci import MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, Manifest, canonical_json
from kiln.core.artifacts.tree import Node, TreeDiff, diff, tree_digest
from kiln.core.artifacts.unpack_rules import (
    MAX_UNPACKED_BYTES,
    Budget,
    Member,
    MemberType,
    RawMember,
    check_member,
)
from kiln.core.digest import Digest, hex_of
from kiln.errors import IntegrityError, NotFound
from kiln.fsio import write_atomic
from kiln.ports.artifacts import ArtifactStore
from kiln.services.artifacts import ensure_deployable, load_manifest

_READ = 1 << 20
MOUNT_POINTS = ("dev", "proc", "tmp")


def unpack(
    store: ArtifactStore, digest: Digest, instances: Path, *, max_bytes: int = MAX_UNPACKED_BYTES
) -> Path:
    """The read-only root filesystem of ``digest``, unpacked once and shared."""
    home = instances / hex_of(digest)
    rootfs = home / "rootfs"
    if (home / "tree.json").is_file() and rootfs.is_dir():
        return rootfs
    manifest = ensure_deployable(store, digest)
    instances.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = instances / f".unpack-{hex_of(digest)[:12]}-{secrets.token_hex(4)}"
    try:
        (work / "rootfs").mkdir(parents=True)
        nodes = _extract_layers(store, manifest, work / "rootfs", Budget(max_bytes=max_bytes))
        for name in MOUNT_POINTS:
            if name not in nodes:
                (work / "rootfs" / name).mkdir()
                nodes[name] = Node(name, "dir", 0o555)
        _make_read_only(work / "rootfs")
        listing = [n.to_json() for n in sorted(nodes.values())]
        record = {"digest": digest, "tree": tree_digest(nodes.values()), "nodes": listing}
        write_atomic(work / "tree.json", canonical_json(record), mode=0o444)
        try:
            work.rename(home)
        except OSError:
            if not (home / "tree.json").is_file():
                raise
            remove_tree(work)  # another process unpacked the same digest first
    except BaseException:
        remove_tree(work)
        raise
    return rootfs


def remove_tree(path: Path) -> None:
    """Delete an unpacked tree (read-only directories are made writable first)."""
    if not path.exists():
        return
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            with contextlib.suppress(OSError):
                Path(root, name).chmod(0o700)
    with contextlib.suppress(OSError):
        path.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


def _extract_layers(
    store: ArtifactStore, manifest: Manifest, rootfs: Path, budget: Budget
) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    regular: set[str] = set()
    for layer in manifest.layers:
        if layer.media_type not in {MEDIA_LAYER_TAR, MEDIA_LAYER_GZIP}:
            raise IntegrityError(f"layer {layer.digest} has unsupported type {layer.media_type}")
        with store.open_blob(layer.digest) as stream:
            source: IO[bytes] = (
                gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
                if layer.media_type == MEDIA_LAYER_GZIP
                else stream
            )
            try:
                with tarfile.open(fileobj=source, mode="r|") as tar:
                    for info in tar:
                        raw = RawMember(info.name, info.type, info.mode, info.size, info.linkname)
                        member = check_member(raw, regular_files=regular, budget=budget)
                        if member is not None:
                            _create(rootfs, member, tar, info, nodes, regular)
            except (tarfile.TarError, EOFError, OSError) as exc:
                if isinstance(exc, IntegrityError):
                    raise
                raise IntegrityError(f"layer {layer.digest} is not a readable tar: {exc}") from None
            while stream.read(_READ):
                pass  # drain: the store checks the digest at the end of the stream
    return nodes


def _create(
    rootfs: Path,
    member: Member,
    tar: tarfile.TarFile,
    info: tarfile.TarInfo,
    nodes: dict[str, Node],
    regular: set[str],
) -> None:
    parts = member.path.split("/")
    current = rootfs
    for index, part in enumerate(parts[:-1]):
        current = current / part
        rel = "/".join(parts[: index + 1])
        try:
            st = current.lstat()
        except FileNotFoundError:
            current.mkdir()
            nodes[rel] = Node(rel, "dir", 0o555)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise IntegrityError(f"unsafe layer member {member.path!r}: {rel} is not a directory")
    target = rootfs / member.path
    existing: os.stat_result | None
    try:
        existing = target.lstat()
    except FileNotFoundError:
        existing = None
    if member.type is MemberType.DIR:
        if existing is None:
            target.mkdir()
        elif not stat.S_ISDIR(existing.st_mode):
            raise IntegrityError(f"unsafe layer member {member.path!r}: replaces a non-directory")
        nodes[member.path] = Node(member.path, "dir", 0o555)
        return
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            raise IntegrityError(f"unsafe layer member {member.path!r}: replaces a directory")
        target.unlink()
        regular.discard(member.path)
    if member.type is MemberType.SYMLINK:
        target.symlink_to(member.target)
        nodes[member.path] = Node(member.path, "symlink", 0o777, 0, member.target)
    elif member.type is MemberType.HARDLINK:
        os.link(rootfs / member.target, target)
        node = nodes[member.target]
        nodes[member.path] = Node(member.path, "file", node.mode, node.size, node.content)
        regular.add(member.path)
    else:
        mode = 0o555 if member.executable else 0o444
        hasher = hashlib.sha256()
        src = tar.extractfile(info)
        if src is None:
            raise IntegrityError(f"layer member {member.path!r} has no data")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_READ):
                hasher.update(chunk)
                out.write(chunk)
        target.chmod(mode)
        nodes[member.path] = Node(
            member.path, "file", mode, member.size, "sha256:" + hasher.hexdigest()
        )
        regular.add(member.path)


def _make_read_only(rootfs: Path) -> None:
    for root, dirs, _files in os.walk(rootfs, topdown=False):
        for name in dirs:
            path = Path(root, name)
            if not path.is_symlink():
                path.chmod(0o555)
    rootfs.chmod(0o555)


def scan_tree(rootfs: Path) -> list[Node]:
    """The listing of an unpacked tree as it is on disk now."""
    out: list[Node] = []
    for root, dirs, files in os.walk(rootfs):
        for name in [*dirs, *files]:
            path = Path(root, name)
            rel = path.relative_to(rootfs).as_posix()
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out.append(Node(rel, "symlink", 0o777, 0, str(path.readlink())))
            elif stat.S_ISDIR(st.st_mode):
                out.append(Node(rel, "dir", mode))
            elif stat.S_ISREG(st.st_mode):
                hasher = hashlib.sha256()
                with open(path, "rb") as handle:
                    while chunk := handle.read(_READ):
                        hasher.update(chunk)
                out.append(Node(rel, "file", mode, st.st_size, "sha256:" + hasher.hexdigest()))
            else:
                out.append(Node(rel, "other", mode))
    return out


def verify_unpacked(
    instances: Path, digest: Digest, *, store: ArtifactStore | None = None
) -> TreeDiff:
    """Re-hash the unpacked tree of ``digest`` and name what differs.

    The reference is the listing recorded at unpack time; with ``store`` it is
    instead derived again from the artifact's layers (and the recorded listing
    must match it), so changing the tree and ``tree.json`` together is caught.
    """
    home = instances / hex_of(digest)
    try:
        record = json.loads((home / "tree.json").read_bytes())
    except FileNotFoundError:
        raise NotFound(
            f"{digest} is not unpacked under {instances}",
            hint="runtimes unpack on first use; nothing to verify yet",
        ) from None
    except ValueError as exc:
        raise IntegrityError(f"{home / 'tree.json'} is corrupt: {exc}") from None
    recorded = [Node.from_json(row) for row in record.get("nodes", [])]
    if tree_digest(recorded) != record.get("tree"):
        raise IntegrityError(f"the recorded listing {home / 'tree.json'} was altered")
    expected = recorded
    if store is not None:
        expected = expected_tree(store, digest)
        if tree_digest(expected) != record.get("tree"):
            raise IntegrityError(
                f"the recorded listing {home / 'tree.json'} does not match artifact {digest}",
                hint="remove the unpacked tree; the runtime will unpack it again",
            )
    return diff(expected, scan_tree(home / "rootfs"))


def expected_tree(store: ArtifactStore, digest: Digest) -> list[Node]:
    """The listing ``unpack`` produces for ``digest``, computed from its layers alone."""
    manifest = load_manifest(store, digest)
    nodes: dict[str, Node] = {}
    for layer in manifest.layers:
        with store.open_blob(layer.digest) as stream:
            source: IO[bytes] = (
                gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
                if layer.media_type == MEDIA_LAYER_GZIP
                else stream
            )
            try:
                with tarfile.open(fileobj=source, mode="r|") as tar:
                    for info in tar:
                        _expect(nodes, tar, info)
            except (tarfile.TarError, EOFError) as exc:
                raise IntegrityError(f"layer {layer.digest} is not a readable tar: {exc}") from None
            while stream.read(_READ):
                pass
    for name in MOUNT_POINTS:
        nodes.setdefault(name, Node(name, "dir", 0o555))
    return sorted(nodes.values())


def _expect(nodes: dict[str, Node], tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
    path = "/".join(p for p in info.name.split("/") if p not in {"", "."})
    if not path:
        return
    parts = path.split("/")
    for index in range(1, len(parts)):
        parent = "/".join(parts[:index])
        nodes.setdefault(parent, Node(parent, "dir", 0o555))
    if info.isdir():
        nodes[path] = Node(path, "dir", 0o555)
    elif info.issym():
        nodes[path] = Node(path, "symlink", 0o777, 0, info.linkname)
    elif info.islnk():
        target = nodes.get("/".join(p for p in info.linkname.split("/") if p not in {"", "."}))
        if target is not None:
            nodes[path] = Node(path, "file", target.mode, target.size, target.content)
    elif info.isfile():
        hasher = hashlib.sha256()
        handle = tar.extractfile(info)
        while handle is not None and (chunk := handle.read(_READ)):
            hasher.update(chunk)
        mode = 0o555 if info.mode & 0o111 else 0o444
        nodes[path] = Node(path, "file", mode, info.size, "sha256:" + hasher.hexdigest())
