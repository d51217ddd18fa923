"""Attestation use cases: make keys, sign statements about artifacts, list them.

Signing goes through the ``Signer`` port and storage through the
``AttestationStore`` port; the composition root (``kiln.bootstrap.trust``)
passes the file-based adapters in. Each signed attestation and each new key is
recorded in the ledger when a ``Recorder`` is given.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from packaging.utils import canonicalize_name

from kiln.core.artifacts.oci import ANN_LAYER_ROLE, parse_manifest
from kiln.core.attest.dsse import INTOTO_PAYLOAD_TYPE, Envelope, parse_envelope
from kiln.core.attest.licenses import parse_metadata
from kiln.core.attest.policy import parse_public_pem
from kiln.core.attest.predicates import Approval, predicate_uri, short_name, summarize
from kiln.core.attest.provenance import (
    LOCAL_BUILDER,
    BuildFacts,
    LockFile,
    ci_run,
    provenance,
)
from kiln.core.attest.referrers import (
    DSSE_ENVELOPE,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    add_to_referrers_index,
    attestation_manifest,
    envelope_layer,
    referrers_in,
    referrers_tag,
)
from kiln.core.attest.sbom import Dependency, parse_pinned_requirements, sbom_statement
from kiln.core.attest.statement import Statement, parse_statement, statement
from kiln.core.digest import Digest, digest_bytes
from kiln.core.keys import key_id
from kiln.core.ledger.kinds import EventKind
from kiln.errors import IntegrityError, InvalidInput, NotFound
from kiln.ports.artifacts import ArtifactStore, BlobInfo, Registry
from kiln.ports.attestations import AttestationStore, StoredEnvelope
from kiln.ports.keys import Signer
from kiln.ports.ledger import Recorder

KEY_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
DEFAULT_KEY = "default"


# -- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    name: str
    key_id: str
    public_path: Path
    has_private: bool


def check_key_name(name: str) -> str:
    if not KEY_NAME.match(name):
        raise InvalidInput(
            f"key name {name!r} is not allowed",
            hint="use lowercase letters, digits, dots, dashes; start with a letter",
        )
    return name


def generate_key(
    name: str,
    *,
    keys_dir: Path,
    generate: Callable[[Path], Signer],
    recorder: Recorder | None = None,
    actor: str = "kiln",
) -> KeyInfo:
    """Make a new key pair ``NAME.key`` (0600) and ``NAME.pub``; never overwrite one."""
    check_key_name(name)
    signer = generate(keys_dir / f"{name}.key")
    if recorder is not None:
        # Only the public key id: the ledger must never hold key material.
        recorder.record(
            EventKind.KEY_CHANGE,
            actor=actor,
            details={"action": "generate", "key": name, "keyId": signer.key_id},
        )
    return KeyInfo(name, signer.key_id, keys_dir / f"{name}.pub", True)


def list_keys(keys_dir: Path) -> list[KeyInfo]:
    """The public keys in ``keys_dir``; a file that is not an Ed25519 key is an error."""
    if not keys_dir.is_dir():
        return []
    found = []
    for pub in sorted(keys_dir.glob("*.pub")):
        raw = parse_public_pem(pub.read_bytes(), what=str(pub))
        found.append(KeyInfo(pub.stem, key_id(raw), pub, pub.with_suffix(".key").exists()))
    return found


# -- signing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttestResult:
    digest: Digest
    predicate_type: str
    subjects: tuple[Digest, ...]
    key_id: str


def sign_statement(stmt: Statement, signers: Sequence[Signer]) -> Envelope:
    """A DSSE envelope of ``stmt`` signed by each signer over the PAE."""
    envelope = Envelope(INTOTO_PAYLOAD_TYPE, stmt.to_bytes())
    message = envelope.pae()
    for signer in signers:
        envelope = envelope.with_signature(signer.key_id, signer.sign(message))
    return envelope


def attest(
    stmt: Statement,
    *,
    signer: Signer,
    store: AttestationStore,
    recorder: Recorder | None = None,
    actor: str = "kiln",
) -> AttestResult:
    """Sign ``stmt``, store it under each subject, and record it."""
    envelope = sign_statement(stmt, [signer])
    subjects = tuple(stmt.subject_digests())
    digest = store.put(envelope.to_bytes(), subjects)
    if recorder is not None:
        for subject in subjects:
            recorder.record(
                EventKind.ATTEST,
                actor=actor,
                artifact=subject,
                links={"attestation": digest},
                details={"predicateType": stmt.predicate_type, "keyId": signer.key_id},
            )
    return AttestResult(digest, stmt.predicate_type, subjects, signer.key_id)


@dataclass(frozen=True)
class SourceInfo:
    uri: str
    revision: str
    dirty: bool


def git_source(directory: Path) -> SourceInfo | None:
    """The git origin, HEAD commit and dirty flag of ``directory``; ``None`` outside git."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                ["git", "-C", str(directory), *args],  # noqa: S607 - git from PATH
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    if not revision:
        return None
    top = git("rev-parse", "--show-toplevel")
    origin = git("remote", "get-url", "origin") or Path(top or directory).resolve().as_uri()
    status = git("status", "--porcelain", "--untracked-files=no")
    return SourceInfo(f"git+{origin}", revision, bool(status))


def build_facts(
    *,
    subject_name: str,
    subject: Digest,
    spec_path: str,
    lock_files: Sequence[Path],
    env: Mapping[str, str],
    started_on: datetime,
    finished_on: datetime,
    source: SourceInfo | None,
    builder_id: str | None = None,
    invocation_id: str | None = None,
) -> BuildFacts:
    """Facts for a provenance made after the fact by ``kiln attest provenance``."""
    ci = ci_run(env)
    uri = source.uri if source else (ci.source_uri if ci else "")
    revision = source.revision if source else (ci.revision if ci else "")
    if not uri or not revision:
        raise InvalidInput(
            "the source of this build is unknown",
            hint="run inside the git checkout, in CI, or pass --source-uri and --revision",
        )
    locks = []
    for path in lock_files:
        try:
            locks.append(LockFile(path.name, digest_bytes(path.read_bytes())))
        except FileNotFoundError:
            raise NotFound(f"lock file {path} does not exist") from None
    return BuildFacts(
        subject_name=subject_name,
        subject_digest=subject,
        spec_path=spec_path,
        source_uri=uri,
        revision=revision,
        lock_files=tuple(locks),
        builder_id=builder_id or (ci.builder_id if ci else LOCAL_BUILDER),
        invocation_id=invocation_id or (ci.invocation_uri if ci else f"urn:uuid:{uuid.uuid4()}"),
        started_on=started_on,
        finished_on=finished_on,
        dirty=source.dirty if source else False,
    )


def provenance_statement(facts: BuildFacts, env: Mapping[str, str]) -> Statement:
    return provenance(facts, ci_run(env))


def sbom_for(
    subject_name: str, subject: Digest, deps: Sequence[Dependency], *, timestamp: datetime
) -> Statement:
    return sbom_statement(subject_name, subject, deps, timestamp=timestamp)


def approval_statement(
    subject_name: str, subject: Digest, *, environment: str, approver: str, at: datetime, note: str
) -> Statement:
    predicate = Approval(environment, approver, at, note).to_predicate()
    return statement([(subject_name, subject)], predicate_uri("approval"), predicate)


def predicate_statement(
    subject_name: str, subject: Digest, predicate_type: str, predicate: Any
) -> Statement:
    if not isinstance(predicate, dict):
        raise InvalidInput("the predicate must be a JSON object")
    return statement([(subject_name, subject)], predicate_uri(predicate_type), predicate)


# -- listing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttestationView:
    """One stored attestation as ``kiln attest show`` prints it (not a verdict on it)."""

    digest: Digest
    predicate_type: str
    key_ids: tuple[str, ...]
    summary: str
    statement: Mapping[str, Any] | None
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "predicateType": self.predicate_type,
            "kind": short_name(self.predicate_type) if self.predicate_type else "",
            "keyIds": list(self.key_ids),
            "summary": self.summary,
            "statement": self.statement,
            "problem": self.problem,
        }


def show(subject: Digest, *, store: AttestationStore) -> list[AttestationView]:
    views = []
    for item in store.for_subject(subject):
        if digest_bytes(item.raw) != item.digest:
            views.append(_broken(item.digest, "the stored bytes do not match their digest"))
            continue
        try:
            envelope = parse_envelope(item.raw)
            stmt = parse_statement(envelope.payload)
        except InvalidInput as exc:
            views.append(_broken(item.digest, exc.message))
            continue
        views.append(
            AttestationView(
                digest=item.digest,
                predicate_type=stmt.predicate_type,
                key_ids=tuple(s.keyid for s in envelope.signatures),
                summary=summarize(stmt.predicate_type, stmt.predicate),
                statement=stmt.to_json(),
            )
        )
    views.sort(key=lambda v: (short_name(v.predicate_type), v.digest))
    return views


def _broken(digest: Digest, problem: str) -> AttestationView:
    return AttestationView(digest, "", (), "unreadable", None, problem)


def actor_from(env: Mapping[str, str]) -> str:
    """Who is acting: the CI's user when in CI, else the login name."""
    for name in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER", "LOGNAME"):
        if env.get(name):
            return env[name]
    return "unknown"


# -- registry referrers -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferrerReport:
    """What moved between the attestation store and a registry for one subject."""

    transferred: int
    already: int
    via: str  # "referrers-api" or "tag-schema"

    def to_json(self) -> dict[str, Any]:
        return {"transferred": self.transferred, "alreadyThere": self.already, "via": self.via}


def _checked_envelope(item: StoredEnvelope) -> Statement:
    if digest_bytes(item.raw) != item.digest:
        raise IntegrityError(f"stored attestation {item.digest} does not match its digest")
    return parse_statement(parse_envelope(item.raw).payload)


def push_attestations(
    store: AttestationStore,
    registry: Registry,
    repository: str,
    subject: Descriptor,
) -> ReferrerReport:
    """Push every stored attestation of ``subject`` as an OCI referrer (docs/attestations.md).

    Each envelope becomes an artifact manifest whose ``subject`` is the image
    manifest. A registry with the referrers API indexes those itself; for one
    without it, the referrers tag schema's index (``sha256-<hex>``) is fetched,
    extended with each new descriptor once, and pushed back.
    """
    made = []
    for item in store.for_subject(subject.digest):
        stmt = _checked_envelope(item)
        made.append(attestation_manifest(subject, item.raw, stmt.predicate_type))
    sent = already = 0
    for art in made:
        if registry.resolve_tag(repository, art.descriptor.digest) is not None:
            already += 1  # a manifest the registry holds has its blobs there too
            continue
        for blob, data in art.blobs.items():
            if not registry.has_blob(repository, blob):
                registry.push_blob(repository, BlobInfo(blob, len(data)), iter([data]))
        registry.put_manifest(repository, art.descriptor.digest, art.manifest, OCI_MANIFEST)
        sent += 1
    if registry.referrers(repository, subject.digest) is not None:
        return ReferrerReport(sent, already, "referrers-api")
    if not made:
        return ReferrerReport(0, 0, "tag-schema")
    tag = referrers_tag(subject.digest)
    current = registry.resolve_tag(repository, tag)
    index = registry.get_manifest(repository, current)[0] if current is not None else None
    updated = index
    for art in made:
        updated = add_to_referrers_index(updated, art.descriptor) or updated
    if updated is not None and updated != index:
        registry.replace_tag(repository, tag, updated, OCI_INDEX, expected=current)
    return ReferrerReport(sent, already, "tag-schema")


def pull_attestations(
    store: AttestationStore,
    registry: Registry,
    repository: str,
    subject: Digest,
) -> ReferrerReport:
    """Fetch the attestations of ``subject`` from the registry into ``store``.

    The referrers list (API or tag) only says where to look: every manifest is
    fetched by digest and checked, it must name ``subject``, the envelope's bytes
    must hash to its descriptor, and its statement must be about ``subject``.
    Anything else refuses the whole pull before one envelope is stored.
    Signatures are *not* judged here: ``kiln verify`` does that with the policy.
    """
    listing = registry.referrers(repository, subject)
    via = "referrers-api"
    if listing is None:
        via = "tag-schema"
        current = registry.resolve_tag(repository, referrers_tag(subject))
        listing = registry.get_manifest(repository, current)[0] if current is not None else None
    if listing is None:
        return ReferrerReport(0, 0, via)
    envelopes: list[tuple[bytes, list[Digest]]] = []
    for desc in referrers_in(listing, artifact_type=DSSE_ENVELOPE):
        manifest, _ = registry.get_manifest(repository, desc.digest)  # checked against digest
        try:
            layer = envelope_layer(manifest, subject)
            raw = _fetch_blob(registry, repository, layer.digest, layer.size)
            stmt = parse_statement(parse_envelope(raw).payload)
        except InvalidInput as exc:
            raise IntegrityError(f"referrer {desc.digest}: {exc.message}") from None
        if not stmt.about(subject):
            raise IntegrityError(f"referrer {desc.digest} holds a statement about another subject")
        envelopes.append((raw, stmt.subject_digests()))
    have = {item.digest for item in store.for_subject(subject)}
    fetched = already = 0
    for raw, subjects in envelopes:
        if store.put(raw, subjects) in have:
            already += 1
        else:
            fetched += 1
    return ReferrerReport(fetched, already, via)


def _fetch_blob(registry: Registry, repository: str, digest: Digest, size: int) -> bytes:
    buffer = bytearray()
    with registry.pull_blob(repository, digest) as chunks:
        for chunk in chunks:
            buffer += chunk
            if len(buffer) > size:
                raise IntegrityError(f"referrer blob {digest} is longer than its descriptor says")
    data = bytes(buffer)
    if len(data) != size or digest_bytes(data) != digest:
        raise IntegrityError(
            f"referrer blob {digest} does not match its digest",
            hint="the registry's copy was changed; it is not stored",
        )
    return data


# -- SBOM from the dependency layer -------------------------------------------------------------

DEPS_ROLE = "deps"
_METADATA = re.compile(r"^(?:\./)?deps/[^/]+\.dist-info/METADATA$")
_MAX_METADATA = 1 << 20


class _HashingReader:
    """Reads a blob stream for tarfile and checks its digest once it is drained."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._hasher = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hasher.update(data)
        return data

    def finish(self, expected: Digest) -> None:
        while chunk := self._stream.read(1 << 20):
            self._hasher.update(chunk)
        if f"sha256:{self._hasher.hexdigest()}" != expected:
            raise IntegrityError(f"layer {expected} does not match its digest")


def layer_dependencies(artifacts: ArtifactStore, subject: Digest) -> list[Dependency]:
    """Each installed distribution of the artifact's dependency layer, with its license.

    Read from the ``deps/*.dist-info/METADATA`` files of the layer blob in the
    store (the layer's digest is checked as it streams); an artifact without a
    dependency layer has none.
    """
    manifest = parse_manifest(artifacts.read_blob(subject), digest=subject)
    found: list[Dependency] = []
    for layer in manifest.layers:
        if layer.annotations.get(ANN_LAYER_ROLE) != DEPS_ROLE:
            continue
        with artifacts.open_blob(layer.digest) as stream:
            reader = _HashingReader(stream)
            try:
                with tarfile.open(fileobj=reader, mode="r|*") as tar:  # type: ignore[call-overload]
                    for member in tar:
                        if not (member.isfile() and _METADATA.match(member.name)):
                            continue
                        if member.size > _MAX_METADATA:
                            raise IntegrityError(f"{member.name} is implausibly large")
                        handle = tar.extractfile(member)
                        text = handle.read().decode("utf-8", "replace") if handle else ""
                        dep = parse_metadata(text)
                        if dep is not None:
                            found.append(dep)
            except tarfile.TarError as exc:
                raise IntegrityError(f"layer {layer.digest} is not a readable tar: {exc}") from None
            reader.finish(layer.digest)
    return found


def with_hashes(deps: Sequence[Dependency], pinned: Sequence[Dependency]) -> list[Dependency]:
    """``deps`` with the lock file's hashes of the same name and version added."""
    hashes = {(canonicalize_name(p.name), p.version): p.hashes for p in pinned}
    return [
        replace(d, hashes=hashes.get((canonicalize_name(d.name), d.version), d.hashes))
        for d in deps
    ]


def artifact_sbom(
    subject_name: str,
    subject: Digest,
    *,
    artifacts: ArtifactStore,
    requirements: tuple[str, str] | None,
    timestamp: datetime,
) -> Statement:
    """The SBOM statement of ``subject``: its dependency layer, or else the pinned lock.

    When the artifact is in the local store, its components (with licenses) come
    from the dependency layer, and ``requirements`` (``(text, source)``) only adds
    the lock's hashes. Otherwise the lock alone lists them, without licenses.
    """
    pinned = (
        parse_pinned_requirements(requirements[0], source=requirements[1]) if requirements else []
    )
    if artifacts.has_blob(subject):
        deps = with_hashes(layer_dependencies(artifacts, subject), pinned)
    elif requirements is not None:
        deps = pinned
    else:
        raise NotFound(
            f"{subject} is not in the local store and no requirements file was given",
            hint="build or pull the artifact first, or pass --requirements FILE",
        )
    return sbom_statement(subject_name, subject, deps, timestamp=timestamp)


# -- one step for CI: provenance and SBOM of a build just made ----------------------------------


def build_source(
    revision: str | None, remote: str | None, dirty: bool, directory: Path
) -> SourceInfo | None:
    """The source of a build from its recorded inputs (``None`` outside git)."""
    if not revision:
        return None
    return SourceInfo(f"git+{remote or directory.resolve().as_uri()}", revision, dirty)


def attest_build(
    *,
    facts: BuildFacts,
    artifacts: ArtifactStore,
    requirements: tuple[str, str] | None,
    env: Mapping[str, str],
    signer: Signer,
    store: AttestationStore,
    recorder: Recorder | None = None,
    actor: str = "kiln",
) -> tuple[AttestResult, AttestResult]:
    """Sign the provenance of a finished build and the SBOM of its dependency layer.

    ``kiln build --sign``: the facts are the build's own (lock-file digests,
    start and finish, the dirty flag), so CI needs a single step. The SBOM's
    timestamp is the build's finish, not the time of signing.
    """
    prov = attest(
        provenance_statement(facts, env),
        signer=signer,
        store=store,
        recorder=recorder,
        actor=actor,
    )
    bom = artifact_sbom(
        facts.subject_name,
        facts.subject_digest,
        artifacts=artifacts,
        requirements=requirements,
        timestamp=facts.finished_on,
    )
    return prov, attest(bom, signer=signer, store=store, recorder=recorder, actor=actor)
