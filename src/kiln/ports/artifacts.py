"""Ports of the artifact area: the store, a remote registry, source control, pip.

``ArtifactStore`` is content-addressed: blobs are named by their sha256, written
once, and verified on every read; tags are aliases that never move; revocations
are permanent. ``Registry`` speaks the OCI distribution API by digest.
``SourceRepo`` answers what revision a tree is at and exports old revisions;
``DependencyInstaller`` installs a pinned requirements file into a directory.
Implementations live in ``kiln.adapters.artifacts``; in-memory fakes in tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from kiln.core.artifacts.tags import Tag
from kiln.core.digest import Digest
from kiln.core.release import Release, ReleaseId
from kiln.core.rollout.planner import RolloutState
from kiln.ports.state import EnvironmentState


@dataclass(frozen=True)
class BlobInfo:
    digest: Digest
    size: int


@dataclass(frozen=True)
class TagRecord:
    tag: Tag
    digest: Digest
    created: str


@dataclass(frozen=True)
class Revocation:
    digest: Digest
    reason: str
    actor: str
    at: str


@dataclass(frozen=True)
class ArtifactRecord:
    """An image manifest the store holds as a root (what ``list`` shows)."""

    digest: Digest
    service: str
    created: str


class BlobWriter(Protocol):
    """A blob being written; nothing is visible until ``commit`` succeeds."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self, expected: Digest | None = None) -> BlobInfo:
        """Publish the blob; refuse (and keep nothing) if it does not hash to ``expected``."""
        ...


class ArtifactStore(Protocol):
    def writer(self) -> AbstractContextManager[BlobWriter]:
        """A writer whose bytes are discarded unless committed inside the ``with``."""
        ...

    def put_blob(self, data: bytes, expected: Digest | None = None) -> BlobInfo: ...

    def has_blob(self, digest: Digest) -> bool: ...

    def blob_size(self, digest: Digest) -> int: ...

    def read_blob(self, digest: Digest, *, limit: int = 16 << 20) -> bytes:
        """The whole blob, verified; ``IntegrityError`` if it does not match its name."""
        ...

    def open_blob(self, digest: Digest) -> AbstractContextManager[BinaryIO]:
        """A stream that raises ``IntegrityError`` at its end if the bytes do not match."""
        ...

    def blobs(self) -> frozenset[Digest]: ...

    def touch_blob(self, digest: Digest) -> None:
        """Mark a blob as just used (a build reusing a cached layer); protects it from gc."""
        ...

    def blob_modified(self, digest: Digest) -> float:
        """When the blob was written or last touched, in seconds since the epoch."""
        ...

    def sweep(self, *, older_than: float) -> int:
        """Remove temp files left by writers that died (older than ``older_than``
        seconds since the epoch); return the bytes freed."""
        ...

    def delete_blob(self, digest: Digest) -> int:
        """Remove a blob; return the bytes freed (0 if it was absent)."""
        ...

    def add_artifact(self, manifest: Digest, *, service: str, created: str) -> None: ...

    def artifacts(self) -> list[ArtifactRecord]: ...

    def forget_artifact(self, digest: Digest) -> None: ...

    def tag(self, tag: Tag, digest: Digest, *, created: str) -> TagRecord:
        """Point a new tag at ``digest``; ``Refused``, naming both digests, if it is taken."""
        ...

    def resolve(self, tag: Tag) -> Digest:
        """The digest a tag names; ``NotFound`` if the tag is unknown."""
        ...

    def tags(self) -> list[TagRecord]: ...

    def revoke(self, digest: Digest, *, reason: str, actor: str, at: str) -> Revocation: ...

    def revocation(self, digest: Digest) -> Revocation | None: ...


class Registry(Protocol):
    """An OCI distribution registry, addressed by repository and digest."""

    def has_blob(self, repository: str, digest: Digest) -> bool: ...

    def push_blob(self, repository: str, info: BlobInfo, chunks: Iterator[bytes]) -> None: ...

    def pull_blob(self, repository: str, digest: Digest) -> AbstractContextManager[Iterator[bytes]]:
        """Stream a blob's bytes; the caller verifies them (the store's writer does)."""
        ...

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> Digest:
        """Upload a manifest under a digest or a tag; a tag that exists elsewhere is refused."""
        ...

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """The manifest bytes and media type, verified when ``reference`` is a digest."""
        ...

    def resolve_tag(self, repository: str, tag: str) -> Digest | None: ...

    def referrers(self, repository: str, subject: Digest) -> bytes | None:
        """The referrers API's index for ``subject``, or ``None`` if the registry lacks it."""
        ...

    def replace_tag(
        self,
        repository: str,
        tag: str,
        data: bytes,
        media_type: str,
        *,
        expected: Digest | None,
    ) -> Digest:
        """Move ``tag`` to ``data`` if it still names ``expected``; only for referrer indexes."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class SourceState:
    """A directory's place in version control; paths are relative to that directory."""

    revision: str | None
    commit_time: int | None
    remote: str | None
    version: str | None
    tracked: frozenset[str] = frozenset()
    modified: frozenset[str] = frozenset()  # tracked paths that differ from the commit


@dataclass(frozen=True)
class WorkTreeDiff:
    """Which files of a work tree git cannot vouch for, against one commit.

    ``differing``: paths (relative to the directory asked about) whose content,
    mode or presence in the work tree differs from ``revision``. ``tracked``:
    the files git tracks there. A tracked file that is not differing has exactly
    the content and executable bit it has in ``revision``.
    """

    revision: str
    differing: frozenset[str]
    tracked: frozenset[str] = frozenset()


class SourceRepo(Protocol):
    def state(self, directory: Path) -> SourceState: ...

    def diff_work_tree(
        self, directory: Path, revision: str | None, *, tracked: bool = False
    ) -> WorkTreeDiff | None:
        """The work tree under ``directory`` against ``revision`` (None: HEAD);
        ``tracked`` also lists the tracked files (costs a parse of git's index).

        None when git cannot vouch for unchanged files: not a work tree, an
        unknown revision, entries git is told not to check (assume-unchanged,
        skip-worktree), submodules, or attributes that could filter content.
        """
        ...

    def last_change(self, directory: Path, path: Path) -> int | None:
        """Commit time of the last commit that touched ``path``, if any."""
        ...

    def export(self, directory: Path, revision: str, dest: Path) -> Path:
        """Write ``revision``'s tree under ``dest``; return the path matching ``directory``."""
        ...


class DependencyInstaller(Protocol):
    def environment(self) -> str:
        """What the installed files depend on besides the lock (interpreter, platform)."""
        ...

    def install(self, requirements: Path, target: Path) -> None:
        """Install exactly the pinned, hashed requirements into ``target``, or raise."""
        ...


class ReleaseHistory(Protocol):
    """What gc reads from the controller's desired state (``DesiredState`` plus a list
    of environment names): which releases ran where, and which are live now."""

    def environments(self) -> list[str]:
        """Every environment the desired state knows, sorted."""
        ...

    def environment(self, name: str) -> EnvironmentState: ...

    def stable_history(self, name: str) -> list[ReleaseId]:
        """Every release that was stable in ``name``, oldest first."""
        ...

    def release(self, release_id: ReleaseId) -> Release | None: ...

    def rollout(self, name: str) -> RolloutState | None: ...
