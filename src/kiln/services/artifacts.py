"""Artifact use cases: list, show, verify, tag, revoke, gc, export, push, pull.

Every function takes the ports it needs (store, registry, recorder, clock).
``ensure_deployable`` is the one check promote and deploy call before they
touch an artifact: it refuses a revoked, missing or corrupt one. Unpacking for
runtimes lives in ``kiln.services.unpack``; ``kiln rebuild`` in
``kiln.services.rebuild``.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kiln.core.artifacts import retention
from kiln.core.artifacts.compress import gzip_chunks
from kiln.core.artifacts.oci import (
    LABEL_SERVICE,
    LAYOUT_FILE,
    MEDIA_LAYER_GZIP,
    MEDIA_LAYER_TAR,
    MEDIA_MANIFEST,
    REF_NAME,
    Descriptor,
    Manifest,
    canonical_json,
    config_labels,
    index_bytes,
    manifest_bytes,
    parse_config,
    parse_manifest,
)
from kiln.core.artifacts.progress import Listener, StepAdvanced, StepFinished, StepStarted, ignore
from kiln.core.artifacts.tags import Tag, is_tag, parse_tag
from kiln.core.artifacts.tree import TreeDiff
from kiln.core.attest.referrers import Descriptor as ReferrerSubject
from kiln.core.digest import Digest, digest_bytes, hex_of, is_digest
from kiln.core.ledger.kinds import EventKind
from kiln.core.release import ReleaseId
from kiln.errors import InvalidInput, NotFound, Refused
from kiln.ports.artifacts import (
    ArtifactStore,
    BlobInfo,
    Registry,
    ReleaseHistory,
    Revocation,
    TagRecord,
)
from kiln.ports.attestations import AttestationStore
from kiln.ports.clock import Clock
from kiln.ports.ledger import Recorder
from kiln.services.attest import ReferrerReport, pull_attestations, push_attestations

_READ = 1 << 20
MOUNT_POINTS = ("dev", "proc", "tmp")


# --- references ---------------------------------------------------------------------------


def resolve_ref(store: ArtifactStore, ref: str) -> Digest:
    """A digest, a tag (``hello:1.0.0-g1a2b3c4``) or a unique digest prefix → digest."""
    if is_digest(ref):
        if not store.has_blob(Digest(ref)):
            raise NotFound(f"{ref} is not in the store", hint="`kiln artifacts list` shows them")
        return Digest(ref)
    if is_tag(ref) and not ref.startswith("sha256:"):
        return store.resolve(parse_tag(ref))
    prefix = ref.removeprefix("sha256:")
    if 6 <= len(prefix) <= 64 and all(c in "0123456789abcdef" for c in prefix):
        found = [a.digest for a in store.artifacts() if hex_of(a.digest).startswith(prefix)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidInput(f"{ref} matches {len(found)} artifacts", hint="give more digits")
        raise NotFound(f"no artifact digest starts with {prefix}")
    raise InvalidInput(
        f"{ref!r} is neither a digest, a tag nor a digest prefix",
        hint="for example sha256:…, hello:1.0.0-g1a2b3c4, or the first 12 hex digits",
    )


def load_manifest(store: ArtifactStore, digest: Digest) -> Manifest:
    return parse_manifest(store.read_blob(digest), digest=digest)


def load_config(store: ArtifactStore, manifest: Manifest) -> dict[str, Any]:
    return parse_config(store.read_blob(manifest.config.digest))


def ensure_deployable(store: ArtifactStore, digest: Digest) -> Manifest:
    """Refuse a revoked, missing or corrupt artifact; return its manifest otherwise.

    Promotion and deployment call this first: it is the single place the
    revocation list is enforced.
    """
    revoked = store.revocation(digest)
    if revoked is not None:
        raise Refused(
            f"artifact {digest} was revoked at {revoked.at} by {revoked.actor}: {revoked.reason}",
            hint="build and promote a fixed version; revocations are permanent",
        )
    manifest = load_manifest(store, digest)
    for blob in manifest.blobs:
        if not store.has_blob(blob):
            raise NotFound(f"artifact {digest} is incomplete: blob {blob} is missing")
    return manifest


# --- list / show / verify ------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactView:
    digest: Digest
    service: str
    created: str
    tags: tuple[str, ...]
    revoked: Revocation | None

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "service": self.service,
            "created": self.created,
            "tags": list(self.tags),
            "revoked": None
            if self.revoked is None
            else {
                "reason": self.revoked.reason,
                "actor": self.revoked.actor,
                "at": self.revoked.at,
            },
        }


def list_artifacts(store: ArtifactStore) -> list[ArtifactView]:
    tags: dict[Digest, list[str]] = {}
    for record in store.tags():
        tags.setdefault(record.digest, []).append(str(record.tag))
    return [
        ArtifactView(
            a.digest,
            a.service,
            a.created,
            tuple(tags.get(a.digest, [])),
            store.revocation(a.digest),
        )
        for a in store.artifacts()
    ]


def show(store: ArtifactStore, ref: str) -> dict[str, Any]:
    digest = resolve_ref(store, ref)
    manifest = load_manifest(store, digest)
    config = load_config(store, manifest)
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    view = next((v for v in list_artifacts(store) if v.digest == digest), None)
    return {
        "digest": digest,
        "tags": list(view.tags) if view else [],
        "revoked": view.to_json()["revoked"] if view else None,
        "annotations": dict(manifest.annotations),
        "labels": config_labels(config),
        "created": config.get("created"),
        "architecture": config.get("architecture"),
        "cmd": (inner or {}).get("Cmd"),
        "env": (inner or {}).get("Env"),
        "workingDir": (inner or {}).get("WorkingDir"),
        "exposedPorts": sorted((inner or {}).get("ExposedPorts") or {}),
        "config": manifest.config.to_json(),
        "layers": [layer.to_json() for layer in manifest.layers],
        "size": sum(layer.size for layer in manifest.layers) + manifest.config.size,
    }


@dataclass(frozen=True)
class VerifyReport:
    digest: Digest
    blobs: int
    bytes: int
    unpacked: TreeDiff | None = None
    unpacked_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.unpacked is None or self.unpacked.empty

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "digest": self.digest,
            "ok": self.ok,
            "blobs": self.blobs,
            "bytes": self.bytes,
        }
        if self.unpacked is not None:
            out["unpacked"] = {"path": self.unpacked_path, **self.unpacked.to_json()}
        return out


def verify(
    store: ArtifactStore, ref: str, *, instances: Path | None = None, on_event: Listener = ignore
) -> VerifyReport:
    """Re-hash every blob of the artifact; with ``instances``, also its unpacked tree."""
    digest = resolve_ref(store, ref)
    manifest = load_manifest(store, digest)
    total = 0
    for blob in manifest.blobs:
        on_event(StepStarted(f"verify {blob[:19]}", total=store.blob_size(blob)))
        with store.open_blob(blob) as stream:
            while chunk := stream.read(_READ):
                total += len(chunk)
        on_event(StepFinished(f"verify {blob[:19]}"))
    if instances is None:
        return VerifyReport(digest, len(manifest.blobs) + 1, total)
    from kiln.services.unpack import verify_unpacked

    changes = verify_unpacked(instances, digest, store=store)
    return VerifyReport(
        digest,
        len(manifest.blobs) + 1,
        total,
        unpacked=changes,
        unpacked_path=str(instances / hex_of(digest) / "rootfs"),
    )


# --- tags and revocations -----------------------------------------------------------------


def add_tag(
    store: ArtifactStore,
    ref: str,
    tag_text: str,
    *,
    clock: Clock,
    recorder: Recorder,
    actor: str,
) -> TagRecord:
    digest = resolve_ref(store, ref)
    tag = parse_tag(tag_text)
    record = store.tag(tag, digest, created=clock.now().isoformat())
    recorder.record(EventKind.TAG, actor=actor, artifact=digest, details={"tag": str(tag)})
    return record


def revoke(
    store: ArtifactStore,
    ref: str,
    *,
    reason: str,
    clock: Clock,
    recorder: Recorder,
    actor: str,
) -> Revocation:
    digest = resolve_ref(store, ref)
    load_manifest(store, digest)
    existing = store.revocation(digest)
    if existing is not None:
        return existing
    revocation = store.revoke(digest, reason=reason, actor=actor, at=clock.now().isoformat())
    recorder.record(EventKind.REVOCATION, actor=actor, artifact=digest, details={"reason": reason})
    return revocation


# --- garbage collection --------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseFacts:
    """What the desired state says must be kept: live references and per-environment history."""

    referenced: dict[Digest, str]  # artifact → the first live release naming it, and where
    environments: dict[str, list[Digest]]  # environment → artifacts that were stable, newest first


def release_facts(history: ReleaseHistory) -> ReleaseFacts:
    """Read retention's inputs from the controller's desired state.

    Live references: each environment's stable release, its pinned release,
    and the candidate and stable of a rollout still in progress. History: the
    artifacts of the environment's stable releases, newest first, each once.
    """
    referenced: dict[Digest, str] = {}
    environments: dict[str, list[Digest]] = {}

    def refer(release_id: str | None, what: str) -> None:
        if not release_id:
            return
        release = history.release(ReleaseId(release_id))
        if release is not None:
            referenced.setdefault(release.artifact, f"{what} ({release.id})")

    for env in history.environments():
        state = history.environment(env)
        refer(state.stable, f"stable in {env}")
        refer(state.pinned, f"pinned in {env}")
        rollout = history.rollout(env)
        if rollout is not None and not rollout.phase.terminal:
            refer(rollout.candidate, f"rolling out in {env}")
            refer(rollout.stable, f"stable in {env} during its rollout")
        order: list[Digest] = []
        for release_id in reversed(history.stable_history(env)):
            release = history.release(release_id)
            if release is not None and release.artifact not in order:
                order.append(release.artifact)
        environments[env] = order
    return ReleaseFacts(referenced, environments)


@dataclass(frozen=True)
class GcReport:
    plan: retention.GcPlan
    freed_bytes: int
    dry_run: bool
    skipped_young: tuple[Digest, ...] = ()
    environments: Mapping[str, list[Digest]] = field(default_factory=dict)
    desired_state: bool = False  # whether release facts came from a desired state

    def to_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "desiredState": self.desired_state,
            "environments": {k: list(v) for k, v in sorted(self.environments.items())},
            "kept": dict(sorted(self.plan.keep.items())),
            "deletedArtifacts": {
                d: self.plan.reasons.get(d, "") for d in self.plan.delete_artifacts
            },
            "deletedBlobs": list(self.plan.delete_blobs),
            "skippedYoungBlobs": list(self.skipped_young),
            "freedBytes": self.freed_bytes,
        }


def gc(
    store: ArtifactStore,
    *,
    policy: retention.Policy,
    referenced: frozenset[Digest] | Mapping[Digest, str] = frozenset(),
    environments: Mapping[str, list[Digest]] | None = None,
    history: ReleaseHistory | None = None,
    dry_run: bool = False,
    grace_seconds: float = 900.0,
    now: float | None = None,
) -> GcReport:
    """Delete what the retention policy does not keep; report what was freed.

    A blob no artifact uses is deleted only once it is older than
    ``grace_seconds``: a build in progress has written its layers but not yet
    its manifest, and a build that reuses a cached layer touches it. Temp
    files of writers that died (older than the grace period too) are removed.
    With ``history`` (the controller's desired state), its live releases and
    per-environment history are kept too (``release_facts``).
    """
    if history is not None:
        facts = release_facts(history)
        extra = referenced if isinstance(referenced, Mapping) else dict.fromkeys(referenced, "")
        referenced = {**extra, **facts.referenced}
        environments = {**(environments or {}), **facts.environments}
    infos = []
    for art in store.artifacts():
        manifest = load_manifest(store, art.digest)
        infos.append(
            retention.ArtifactInfo(
                digest=art.digest,
                service=art.service,
                created=art.created,
                revoked=store.revocation(art.digest) is not None,
                blobs=manifest.blobs,
            )
        )
    plan = retention.plan(
        infos,
        referenced=referenced,
        environments=environments or {},
        policy=policy,
        all_blobs=store.blobs(),
    )
    moment = time.time() if now is None else now
    doomed_roots = set(plan.delete_artifacts)
    young = tuple(
        d
        for d in plan.delete_blobs
        if d not in doomed_roots and moment - store.blob_modified(d) < grace_seconds
    )
    freed = 0
    if not dry_run:
        freed += store.sweep(older_than=moment - grace_seconds)  # crashed writers' temp files
        for digest in plan.delete_artifacts:
            store.forget_artifact(digest)
        for blob in plan.delete_blobs:
            if blob not in young:
                freed += store.delete_blob(blob)
    else:
        freed = sum(store.blob_size(b) for b in plan.delete_blobs if b not in young)
    return GcReport(
        plan=plan,
        freed_bytes=freed,
        dry_run=dry_run,
        skipped_young=young,
        environments=dict(environments or {}),
        desired_state=history is not None,
    )


# --- export, push, pull --------------------------------------------------------------------


def export_layout(
    store: ArtifactStore,
    ref: str,
    dest: Path,
    *,
    ref_name: str | None = None,
    gzip_layers: bool = False,
) -> Path:
    """Write a standalone OCI image layout (for skopeo, podman, a USB stick).

    With ``gzip_layers`` the layers are compressed deterministically
    (``kiln.core.artifacts.compress``) and a new manifest points at them: a
    distribution copy with its own digest. The config, and so the layers'
    ``diff_ids`` and the runtime filesystem, are unchanged; the artifact's
    identity stays the uncompressed digest (docs/artifacts.md, "Compression").
    """
    digest = resolve_ref(store, ref)
    manifest = load_manifest(store, digest)
    if dest.exists() and any(dest.iterdir()):
        raise Refused(f"{dest} is not empty", hint="export into a new directory")
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    copied = (digest, manifest.config.digest) if gzip_layers else (digest, *manifest.blobs)
    for blob in copied:
        with store.open_blob(blob) as stream, open(blobs / hex_of(blob), "wb") as out:
            shutil.copyfileobj(stream, out, _READ)
    top = Descriptor(MEDIA_MANIFEST, digest, store.blob_size(digest))
    if gzip_layers:
        layers = [_gzip_layer(store, layer, blobs) for layer in manifest.layers]
        data = manifest_bytes(manifest.config, layers, manifest.annotations)
        top = Descriptor(MEDIA_MANIFEST, digest_bytes(data), len(data))
        (blobs / hex_of(top.digest)).write_bytes(data)
    name = ref_name
    if name is None:
        names = [r.tag.name for r in store.tags() if r.digest == digest]
        name = names[0] if names else None
    annotations = {REF_NAME: name} if name else {}
    entry = Descriptor(MEDIA_MANIFEST, top.digest, top.size, annotations)
    (dest / "oci-layout").write_bytes(canonical_json(LAYOUT_FILE))
    (dest / "index.json").write_bytes(index_bytes([entry]))
    return dest


def _gzip_layer(store: ArtifactStore, layer: Descriptor, blobs: Path) -> Descriptor:
    if layer.media_type != MEDIA_LAYER_TAR:
        raise InvalidInput(f"layer {layer.digest} is already {layer.media_type}")
    hasher = hashlib.sha256()
    size = 0
    tmp = blobs / f".{hex_of(layer.digest)}.gz.tmp"
    with store.open_blob(layer.digest) as stream, open(tmp, "wb") as out:
        for chunk in gzip_chunks(iter(lambda: stream.read(_READ), b"")):
            hasher.update(chunk)
            out.write(chunk)
            size += len(chunk)
    compressed = Digest("sha256:" + hasher.hexdigest())
    tmp.replace(blobs / hex_of(compressed))
    return Descriptor(MEDIA_LAYER_GZIP, compressed, size, layer.annotations)


@dataclass(frozen=True)
class TransferReport:
    digest: Digest
    repository: str
    sent: int
    skipped: int
    bytes: int
    tags: tuple[str, ...] = field(default_factory=tuple)
    attestations: ReferrerReport | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "repository": self.repository,
            "blobsTransferred": self.sent,
            "blobsAlreadyThere": self.skipped,
            "bytes": self.bytes,
            "tags": list(self.tags),
            "attestations": None if self.attestations is None else self.attestations.to_json(),
        }


def push(
    store: ArtifactStore,
    registry: Registry,
    ref: str,
    *,
    repository: str | None = None,
    on_event: Listener = ignore,
    attestations: AttestationStore | None = None,
) -> TransferReport:
    """Upload an artifact by digest, then each of its local tags (which never move).

    With ``attestations``, every stored attestation of the artifact follows as an
    OCI referrer (``kiln.services.attest.push_attestations``).
    """
    digest = resolve_ref(store, ref)
    manifest = ensure_deployable(store, digest)
    labels = config_labels(load_config(store, manifest))
    repo = repository or labels.get(LABEL_SERVICE) or "kiln"
    sent = skipped = moved = 0
    for blob in manifest.blobs:
        if registry.has_blob(repo, blob):
            skipped += 1
            continue
        size = store.blob_size(blob)
        step = f"push {blob[:19]}"
        on_event(StepStarted(step, total=size))
        with store.open_blob(blob) as stream:
            registry.push_blob(repo, BlobInfo(blob, size), _progress(stream, step, on_event))
        on_event(StepFinished(step))
        sent += 1
        moved += size
    data = store.read_blob(digest)
    registry.put_manifest(repo, digest, data, MEDIA_MANIFEST)
    tags = tuple(r.tag.name for r in store.tags() if r.digest == digest)
    for name in tags:
        registry.put_manifest(repo, name, data, MEDIA_MANIFEST)
    referred = None
    if attestations is not None:
        subject = ReferrerSubject(MEDIA_MANIFEST, digest, len(data))
        referred = push_attestations(attestations, registry, repo, subject)
    return TransferReport(digest, repo, sent, skipped, moved, tags, referred)


def _progress(stream: IO[bytes], step: str, on_event: Listener) -> Iterator[bytes]:
    done = 0
    while chunk := stream.read(_READ):
        done += len(chunk)
        on_event(StepAdvanced(step, done))
        yield chunk


def pull(
    store: ArtifactStore,
    registry: Registry,
    repository: str,
    reference: str,
    *,
    clock: Clock,
    on_event: Listener = ignore,
    attestations: AttestationStore | None = None,
) -> TransferReport:
    """Download an artifact into the store; every blob is verified before it is kept.

    With ``attestations``, the artifact's referrers are fetched into that store
    too, each checked (``kiln.services.attest.pull_attestations``).
    """
    data, media = registry.get_manifest(repository, reference)
    if media != MEDIA_MANIFEST:
        raise InvalidInput(
            f"{repository}:{reference} is a {media}, not an OCI image manifest",
            hint="kiln pulls single-platform OCI images it (or a compatible tool) built",
        )
    digest = digest_bytes(data)
    manifest = parse_manifest(data, digest=digest)
    sent = skipped = moved = 0
    for blob in manifest.blobs:
        if store.has_blob(blob):
            skipped += 1
            continue
        step = f"pull {blob[:19]}"
        on_event(StepStarted(step))
        with registry.pull_blob(repository, blob) as chunks, store.writer() as out:
            for chunk in chunks:
                out.write(chunk)
                moved += len(chunk)
            out.commit(expected=blob)
        on_event(StepFinished(step))
        sent += 1
    store.put_blob(data, expected=digest)
    labels = config_labels(load_config(store, manifest))
    service = labels.get(LABEL_SERVICE) or repository.rsplit("/", 1)[-1]
    now = clock.now().isoformat()
    if not any(a.digest == digest for a in store.artifacts()):
        store.add_artifact(digest, service=service, created=now)
    tags: tuple[str, ...] = ()
    if not is_digest(reference):
        tag = Tag(service, reference)
        store.tag(parse_tag(str(tag)), digest, created=now)
        tags = (str(tag),)
    referred = None
    if attestations is not None:
        referred = pull_attestations(attestations, registry, repository, digest)
    return TransferReport(digest, repository, sent, skipped, moved, tags, referred)
