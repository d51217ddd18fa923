"""Garbage-collection planning: which artifacts and blobs the store may delete.

Pure: the caller passes every artifact (digest, service, creation time,
revoked?), the digests any release references, the per-environment history
(newest first) and the blobs each artifact uses. ``referenced`` may map each
digest to the reason it is referenced (which release, where). An artifact is kept when a
release references it, when it is among the last ``keep_per_environment`` of
an environment, or when it is among the newest ``keep_recent`` unrevoked builds
of its service; each kept artifact carries its first reason. A blob is deleted
only when no kept artifact uses it. Tags are never deleted: they stay as
tombstones so a tag can never come back pointing elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kiln.core.digest import Digest


@dataclass(frozen=True)
class ArtifactInfo:
    digest: Digest
    service: str
    created: str  # RFC 3339; sorts in time order
    revoked: bool = False
    blobs: tuple[Digest, ...] = ()


@dataclass(frozen=True)
class Policy:
    keep_per_environment: int = 3
    keep_recent: int = 5


@dataclass(frozen=True)
class GcPlan:
    keep: Mapping[Digest, str]
    delete_artifacts: tuple[Digest, ...]
    delete_blobs: tuple[Digest, ...]
    reasons: Mapping[Digest, str] = field(default_factory=dict)


def plan(
    artifacts: Sequence[ArtifactInfo],
    *,
    referenced: frozenset[Digest] | Mapping[Digest, str],
    environments: Mapping[str, Sequence[Digest]],
    policy: Policy,
    all_blobs: frozenset[Digest],
) -> GcPlan:
    keep: dict[Digest, str] = {}
    known = {a.digest for a in artifacts}
    why = referenced if isinstance(referenced, Mapping) else dict.fromkeys(referenced, "")
    for digest in sorted(set(why) & known):
        keep.setdefault(digest, why[digest] or "referenced by a release")
    for env in sorted(environments):
        for digest in list(environments[env])[: policy.keep_per_environment]:
            if digest in known:
                keep.setdefault(digest, f"among the last {policy.keep_per_environment} in {env}")
    by_service: dict[str, list[ArtifactInfo]] = {}
    for art in artifacts:
        by_service.setdefault(art.service, []).append(art)
    for service, arts in sorted(by_service.items()):
        fresh = sorted((a for a in arts if not a.revoked), key=lambda a: a.created, reverse=True)
        for art in fresh[: policy.keep_recent]:
            keep.setdefault(art.digest, f"among the newest {policy.keep_recent} of {service}")
    doomed = tuple(sorted(a.digest for a in artifacts if a.digest not in keep))
    reasons = {
        a.digest: "revoked" if a.revoked else "beyond the retention policy"
        for a in artifacts
        if a.digest not in keep
    }
    used: set[Digest] = set(keep)
    for art in artifacts:
        if art.digest in keep:
            used.update(art.blobs)
    blobs = tuple(sorted(all_blobs - used))
    return GcPlan(keep=keep, delete_artifacts=doomed, delete_blobs=blobs, reasons=reasons)
