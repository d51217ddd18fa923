"""``kiln build``: the spec's build section and a source tree → an OCI image in the store.

The image has a dependencies layer (``/deps``, pip's flat ``--target`` tree,
``PYTHONPATH=/deps``) and one or more application layers (``/app``, the
config's WorkingDir) cut by ``kiln.core.artifacts.chunking``. Every layer is an
uncompressed, deterministic tar (``kiln.core.artifacts.tarformat``) streamed
straight into the store while it is hashed: one read of each file, one hash.

Caching (``<state>/cache``), so unchanged layers are neither rebuilt nor
re-hashed:

* dependencies: keyed by the lock's digest, the installer's environment
  (interpreter, platform tag, pip version) and the layer mtime → layer digest;
* application: per layer, keyed by a fingerprint of (path, size, mtime_ns,
  ctime_ns, mode, inode, device, link target) of its entries → layer digest.
  A file whose mtime is within ``RACY_SECONDS`` of the scan is never cached
  (git's "racy clean" problem: a write inside the timestamp granularity would
  go unseen).

A cache hit is used only if the store still holds the blob. The scan validates
the whole tree before any blob is written, so bad input leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import platform
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln.core.artifacts import chunking
from kiln.core.artifacts.oci import (
    ANN_CREATED,
    ANN_LAYER_ROLE,
    ANN_REVISION,
    ANN_SOURCE,
    ANN_TITLE,
    ANN_VERSION,
    LABEL_DIRTY,
    LABEL_PYTHON,
    LABEL_REQUIREMENTS,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_VERSION,
    MEDIA_CONFIG,
    MEDIA_LAYER_TAR,
    Descriptor,
    ImageConfig,
    canonical_json,
    manifest_bytes,
)
from kiln.core.artifacts.progress import Listener, StepAdvanced, StepFinished, StepStarted, ignore
from kiln.core.artifacts.selection import Selection
from kiln.core.artifacts.tags import Tag, build_tag
from kiln.core.artifacts.tarformat import END_OF_ARCHIVE, Entry, Kind, header, padding
from kiln.core.digest import Digest, digest_bytes
from kiln.core.ledger.kinds import EventKind
from kiln.core.spec.models import ServiceSpec
from kiln.errors import InvalidInput, NotFound, Refused
from kiln.ports.artifacts import (
    ArtifactStore,
    DependencyInstaller,
    SourceRepo,
    SourceState,
    WorkTreeDiff,
)
from kiln.ports.clock import Clock
from kiln.ports.ledger import Recorder
from kiln.services import scanindex
from kiln.services.sourcetree import SourceEntry, copy_file, describe, scan

FORMAT = "kiln-layer-v1"  # bump when the bytes of a layer for the same inputs change
APP_ROOT = "app"
DEPS_ROOT = "deps"
LABEL_EPOCH = "dev.kiln.epoch"
LABEL_DEPS_EPOCH = "dev.kiln.deps-epoch"
MAX_FILE_BYTES = 4 << 30  # one file; beyond this an "app" is almost surely a mistake
RACY_SECONDS = 2.0
_BATCH = 1 << 20
_REQUIREMENT_NAMES = ("requirements.lock", "requirements.txt")
_BASE_PATH = "/deps/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class BuildInputs:
    """Everything besides file contents that the image bytes depend on."""

    service: str
    version: str
    revision: str | None
    dirty: bool
    remote: str | None
    epoch: int
    deps_epoch: int


@dataclass(frozen=True)
class LayerResult:
    role: str
    digest: Digest
    size: int
    entries: int
    cached: bool


@dataclass(frozen=True)
class BuildResult:
    digest: Digest
    tag: Tag | None
    inputs: BuildInputs
    layers: tuple[LayerResult, ...]
    config: Digest
    seconds: float
    created: str = ""  # wall-clock time the tag was made (not part of the digest)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "tag": str(self.tag) if self.tag else None,
            "service": self.inputs.service,
            "version": self.inputs.version,
            "revision": self.inputs.revision,
            "dirty": self.inputs.dirty,
            "epoch": self.inputs.epoch,
            "config": self.config,
            "created": self.created,
            "seconds": round(self.seconds, 3),
            "layers": [
                {
                    "role": layer.role,
                    "digest": layer.digest,
                    "size": layer.size,
                    "entries": layer.entries,
                    "cached": layer.cached,
                }
                for layer in self.layers
            ],
        }


@dataclass(frozen=True)
class AppTree:
    """The application tree as a scan found it.

    Either every entry (``entries``: a full scan), or the scan index of the
    last build with the files that changed since (``index``, ``changed``).
    """

    entries: list[SourceEntry] | None
    index: scanindex.Index | None = None
    changed: tuple[scanindex.Changed, ...] = ()
    context: Path | None = None
    full: FullScan | None = None
    walked: bool = False  # the index answered by a walk (its directory records are fresh)

    def files(self) -> list[str]:
        """The non-directory paths of the layer, relative to the context."""
        if self.entries is None:
            return self.index.paths() if self.index is not None else []
        skip = len(APP_ROOT) + 1
        return [s.entry.path[skip:] for s in self.entries if s.entry.kind is not Kind.DIR]


@dataclass(frozen=True)
class FullScan:
    """What a full scan saw besides its entries, for the next scan index."""

    walked: dict[str, os.stat_result]
    racy_before_ns: int
    view: WorkTreeDiff | None  # git's diff against HEAD, taken before the walk
    view_started_ns: int


@dataclass
class Builder:
    """Builds images into ``store``; one instance per command, ports passed in."""

    store: ArtifactStore
    source: SourceRepo
    installer: DependencyInstaller
    recorder: Recorder
    clock: Clock
    cache_dir: Path
    on_event: Listener = ignore
    max_file_bytes: int = MAX_FILE_BYTES
    files_per_layer: int = chunking.FILES_PER_LAYER
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    # --- inputs --------------------------------------------------------------------

    def scan(self, spec: ServiceSpec, spec_dir: Path) -> AppTree:
        """The application tree of the build context, validated (nothing is written).

        With a scan index from the last build of this context, only what changed
        since is looked at (``kiln.services.scanindex``); otherwise every entry.
        """
        self.on_event(StepStarted("scan", unit="files"))
        context = _context(spec, spec_dir)
        selection = _selection(spec)
        racy = time.time_ns() - int(RACY_SECONDS * 1e9)
        index = scanindex.load(self._index_path(context, selection))
        if index is not None:
            changed: list[scanindex.Changed] | None = None
            how = "index"
            if index.git is not None:
                diff = self.source.diff_work_tree(context, index.git[0])
                if diff is not None:
                    changed = scanindex.git_changes(
                        context, index, diff, selection, racy_before_ns=racy
                    )
                    how = "index, git"
            if changed is None:
                how = "index"
                changed = scanindex.changes(context, index, selection, racy_before_ns=racy)
            if changed is not None:
                detail = f"{index.files} files, {len(changed)} changed ({how})"
                self.on_event(StepFinished("scan", detail))
                return AppTree(None, index, tuple(changed), context, walked=how == "index")
        found, full = self._full_scan(context, selection)
        self.on_event(StepFinished("scan", f"{len(found)} entries"))
        return AppTree(found, context=context, full=full)

    def _full_scan(self, context: Path, selection: Selection) -> tuple[list[SourceEntry], FullScan]:
        # git looks first: whatever changes while the walk runs has a later ctime,
        # and build_index records such files as ones git cannot vouch for
        started = time.time_ns()
        view = self.source.diff_work_tree(context, None, tracked=True)
        racy = time.time_ns() - int(RACY_SECONDS * 1e9)
        walked: dict[str, os.stat_result] = {}
        found = scan(
            context,
            selection,
            max_file_bytes=self.max_file_bytes,
            racy_before_ns=racy,
            root=APP_ROOT,
            directories=walked,
        )
        return found, FullScan(walked, racy, view, started)

    def _index_path(self, context: Path, selection: Selection) -> Path:
        key = scanindex.key_of(
            (
                FORMAT,
                scanindex.VERSION,
                sys.version,
                str(context),
                tuple(selection.include),
                tuple(selection.exclude),
                self.max_file_bytes,
                self.files_per_layer,
                chunking.MAX_LAYERS,
                APP_ROOT,
            )
        )
        return self.cache_dir / "index" / f"{key}.bin"

    def inputs(
        self,
        spec: ServiceSpec,
        spec_dir: Path,
        *,
        allow_dirty: bool,
        scanned: AppTree,
        spec_file: Path | None = None,
    ) -> BuildInputs:
        """Revision, version and times of a build of the tree as it is now.

        The tree is dirty when any entry of the application layer is not a
        tracked, unmodified file of the commit (untracked and git-ignored files
        count), or a tracked file the layer would hold was deleted: then the
        artifact could not be rebuilt from its revision.
        """
        context = _context(spec, spec_dir)
        state = self.source.state(context)
        if state.revision is None and not allow_dirty:
            raise Refused(
                f"{context} is not in a git work tree with a commit; kiln cannot name the revision",
                hint="commit the source first, or pass --allow-dirty (recorded on the artifact)",
            )
        changes = _uncommitted(scanned, state, _selection(spec))
        if state.revision is not None:
            # the lock and the spec shape the image too; outside the context they
            # are not in the scan, so ask git about them one by one
            for extra in (_requirements(spec, spec_dir), spec_file):
                if extra is not None and not extra.resolve().is_relative_to(context):
                    around = self.source.state(extra.resolve().parent)
                    name = extra.name
                    if name not in around.tracked or name in around.modified:
                        changes.append(str(extra))
        if changes and not allow_dirty:
            shown = ", ".join(changes[:5]) + (
                f" and {len(changes) - 5} more" if len(changes) > 5 else ""
            )
            raise Refused(
                f"the git tree at {context} has uncommitted changes: {shown}",
                hint="commit or stash them, or pass --allow-dirty (recorded on the artifact)",
            )
        fixed = _source_date_epoch(self.environ)
        epoch = deps_epoch = fixed if fixed is not None else (state.commit_time or 0)
        if fixed is None:
            requirements = _requirements(spec, spec_dir)
            if requirements is not None and state.revision is not None:
                deps_epoch = self.source.last_change(context, requirements) or epoch
        return BuildInputs(
            service=spec.service,
            version=spec.build.version or state.version or "0.0.0",
            revision=state.revision,
            dirty=bool(changes) or state.revision is None,
            remote=state.remote,
            epoch=epoch,
            deps_epoch=deps_epoch,
        )

    # --- the build -----------------------------------------------------------------

    def build(
        self,
        spec: ServiceSpec,
        spec_dir: Path,
        *,
        inputs: BuildInputs,
        scanned: AppTree | None = None,
        actor: str = "kiln",
        tag: bool = True,
        record: bool = True,
    ) -> BuildResult:
        started = time.monotonic()
        requirements = _requirements(spec, spec_dir)
        tree = scanned if scanned is not None else self.scan(spec, spec_dir)
        layers: list[LayerResult] = []
        env_text = self.installer.environment()
        req_digest: Digest | None = None
        if requirements is not None:
            req_digest, deps = self._deps_layer(requirements, inputs.deps_epoch, env_text)
            layers.append(deps)
        layers.extend(self._app_layers(spec, spec_dir, tree, inputs.epoch))
        config = self._config(spec, inputs, layers, env_text, req_digest)
        config_info = self.store.put_blob(config)
        descriptors = [
            Descriptor(MEDIA_LAYER_TAR, layer.digest, layer.size, {ANN_LAYER_ROLE: layer.role})
            for layer in layers
        ]
        manifest = manifest_bytes(
            Descriptor(MEDIA_CONFIG, config_info.digest, config_info.size),
            descriptors,
            _annotations(inputs),
        )
        digest = self.store.put_blob(manifest).digest
        now = self.clock.now().isoformat()
        if not any(a.digest == digest for a in self.store.artifacts()):
            self.store.add_artifact(digest, service=spec.service, created=now)
        human: Tag | None = None
        if tag:
            human = build_tag(
                service=inputs.service,
                version=inputs.version,
                revision=inputs.revision,
                dirty=inputs.dirty,
                manifest=digest,
            )
            self.store.tag(human, digest, created=now)
        result = BuildResult(
            digest=digest,
            tag=human,
            inputs=inputs,
            layers=tuple(layers),
            config=config_info.digest,
            seconds=time.monotonic() - started,
            created=now,
        )
        if record:
            self.recorder.record(
                EventKind.BUILD,
                actor=actor,
                artifact=digest,
                links={"config": config_info.digest},
                details={
                    "tag": str(human) if human else None,
                    "revision": inputs.revision,
                    "dirty": inputs.dirty,
                    "layers": [layer.digest for layer in layers],
                    "cached_layers": sum(1 for layer in layers if layer.cached),
                },
            )
        return result

    def _config(
        self,
        spec: ServiceSpec,
        inputs: BuildInputs,
        layers: Sequence[LayerResult],
        env_text: str,
        req_digest: Digest | None,
    ) -> bytes:
        env = {"PATH": _BASE_PATH, "PYTHONPATH": f"/{DEPS_ROOT}", "PYTHONDONTWRITEBYTECODE": "1"}
        env.update(spec.build.env)
        labels = {
            LABEL_SERVICE: inputs.service,
            LABEL_VERSION: inputs.version,
            LABEL_REVISION: inputs.revision or "",
            LABEL_DIRTY: "true" if inputs.dirty else "false",
            LABEL_EPOCH: str(inputs.epoch),
            LABEL_DEPS_EPOCH: str(inputs.deps_epoch),
        }
        if req_digest is not None:
            labels[LABEL_REQUIREMENTS] = req_digest
            labels[LABEL_PYTHON] = env_text
        return ImageConfig(
            created=_rfc3339(inputs.epoch),
            architecture=_architecture(),
            env=[f"{k}={v}" for k, v in sorted(env.items())],
            cmd=list(spec.build.command),
            working_dir=f"/{APP_ROOT}",
            exposed_ports=[spec.build.port],
            labels=labels,
            diff_ids=[layer.digest for layer in layers],
        ).to_bytes()

    # --- dependencies --------------------------------------------------------------

    def _deps_layer(
        self, requirements: Path, epoch: int, env_text: str
    ) -> tuple[Digest, LayerResult]:
        try:
            lock = requirements.read_bytes()
        except OSError as exc:
            raise InvalidInput(
                f"cannot read {requirements}: {exc.strerror}",
                hint="build.requirements names the pinned requirements file",
            ) from None
        req_digest = digest_bytes(lock)
        key = _key({"format": FORMAT, "lock": req_digest, "env": env_text, "epoch": epoch})
        hit = self._cached("deps", key)
        if hit is not None:
            self.on_event(StepFinished("dependencies", "unchanged", cached=True))
            return req_digest, replace(hit, role="deps")
        self.on_event(StepStarted("dependencies", unit="files"))
        work = self.cache_dir / "tmp"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work, prefix="deps-") as tmp:
            target = Path(tmp) / "target"
            target.mkdir()
            self.installer.install(requirements, target)
            sources = scan(
                target,
                Selection(["**/*"], ["**/__pycache__/**", "**/*.pyc"]),
                max_file_bytes=self.max_file_bytes,
                racy_before_ns=0,
                root=DEPS_ROOT,
            )
            result = self._write_layer("deps", sources, epoch, step="dependencies")
        self._remember("deps", key, result)
        return req_digest, result

    # --- application ---------------------------------------------------------------

    def _app_layers(
        self, spec: ServiceSpec, spec_dir: Path, tree: AppTree, epoch: int
    ) -> list[LayerResult]:
        """Every application layer; through the scan index when the tree kept its shape."""
        context = tree.context or _context(spec, spec_dir)
        selection = _selection(spec)
        index_path = self._index_path(context, selection)
        if tree.index is not None and tree.index.epoch == epoch:
            reused = self._layers_from_index(
                context, tree.index, tree.changed, epoch, index_path, save=tree.walked
            )
            if reused is not None:
                return reused
        entries, full = tree.entries, tree.full
        if entries is None or full is None:
            entries, full = self._full_scan(context, selection)
        chunks = chunking.split(entries, lambda s: s.entry, every=self.files_per_layer)
        results = [
            self._app_layer(chunk, epoch, number, len(chunks))
            for number, chunk in enumerate(chunks)
        ]
        facts = [(r.digest, r.size, r.entries) for r in results]
        index = scanindex.build_index(
            epoch,
            chunks,
            facts,
            root=APP_ROOT,
            root_dir=context,
            walked=full.walked,
            racy_before_ns=full.racy_before_ns,
            view=full.view,
            view_started_ns=full.view_started_ns,
        )
        scanindex.save(index_path, index)
        return results

    def _layers_from_index(
        self,
        context: Path,
        index: scanindex.Index,
        changed: Sequence[scanindex.Changed],
        epoch: int,
        index_path: Path,
        *,
        save: bool,
    ) -> list[LayerResult] | None:
        """Reuse every layer holding no changed file; rebuild the others from their members.

        The members of every layer to rebuild are described (and validated) before
        any blob is written. None when a member vanished meanwhile (full scan then).
        """
        fresh = {c.rel: c.st for c in changed}
        dirty = {index.layer_of(f"{APP_ROOT}/{c.rel}") for c in changed}
        if index.git is not None:
            index.git[1].update(fresh)  # changed since C0's view: git cannot vouch for them
        dirty.update(
            n
            for n, (_, facts) in enumerate(index.layers)
            if not self.store.has_blob(Digest(facts[0]))
        )
        racy = time.time_ns() - int(RACY_SECONDS * 1e9)
        skip = len(APP_ROOT) + 1
        rebuilt: dict[int, list[SourceEntry]] = {}
        for number in sorted(dirty):
            entries: list[SourceEntry] = []
            for path, is_dir in index.members(number):
                if is_dir:
                    entries.append(SourceEntry(Entry(path, Kind.DIR)))
                    continue
                rel = path[skip:]
                st = fresh.get(rel)
                if st is None:
                    try:
                        st = os.lstat(f"{context}/{rel}")
                    except OSError:
                        return None
                entries.append(
                    describe(
                        context,
                        rel,
                        st,
                        max_file_bytes=self.max_file_bytes,
                        racy_before_ns=racy,
                        root=APP_ROOT,
                    )
                )
            rebuilt[number] = entries
        count = len(index.layers)
        results: list[LayerResult] = []
        for number, (members, facts) in enumerate(index.layers):
            step = f"app layer {number + 1}/{count}"
            if number not in rebuilt:
                self.store.touch_blob(Digest(facts[0]))  # in use again: gc's grace restarts
                self.on_event(StepFinished(step, "unchanged", cached=True))
                results.append(LayerResult("app", Digest(facts[0]), facts[1], facts[2], True))
                continue
            result = self._app_layer(rebuilt[number], epoch, number, count)
            results.append(result)
            index.layers[number] = (members, (result.digest, result.size, result.entries))
            for source in rebuilt[number]:
                if source.entry.kind is not Kind.DIR:
                    directory, _, name = source.entry.path[skip:].rpartition("/")
                    index.dirs[directory][name] = scanindex.packed(source.stat_key)
        if save or changed or rebuilt:  # new fingerprints, layers, directory records
            scanindex.save(index_path, index)
        return results

    def _app_layer(
        self, chunk: Sequence[SourceEntry], epoch: int, index: int, count: int
    ) -> LayerResult:
        step = f"app layer {index + 1}/{count}"
        # marshal of tuples of str and int is exact and far cheaper than JSON; the
        # key only has to be stable for this interpreter, it never leaves the cache
        rows = marshal.dumps([(s.entry.path, s.entry.linkname, s.stat_key) for s in chunk])
        key = _key({"format": FORMAT, "epoch": epoch, "rows": hashlib.sha256(rows).hexdigest()})
        cacheable = all(s.stat_key or s.path is None for s in chunk)
        hit = self._cached("app", key) if cacheable else None
        if hit is not None:
            self.on_event(StepFinished(step, "unchanged", cached=True))
            return hit
        result = self._write_layer("app", chunk, epoch, step=step)
        if cacheable:
            self._remember("app", key, result)
        return result

    # --- layer writing -------------------------------------------------------------

    def _write_layer(
        self, role: str, sources: Sequence[SourceEntry], epoch: int, *, step: str
    ) -> LayerResult:
        total = sum(s.entry.size for s in sources)
        self.on_event(StepStarted(step, total=total))
        done = 0
        reported = 0
        with self.store.writer() as out, _Pipeline(out.write) as pipe:
            # Small members are gathered into ~1 MiB batches; a second thread hashes
            # and writes each batch while this one reads the next files (the way
            # ``tar | sha256sum`` overlaps reading and hashing in two processes).
            pending = bytearray()

            def gather(data: bytes | memoryview) -> None:
                nonlocal pending
                pending += data
                if len(pending) >= _BATCH:
                    pipe.put(pending)
                    pending = bytearray()

            for source in sources:
                gather(header(source.entry, mtime=epoch))
                if source.entry.kind is Kind.FILE and source.path is not None:
                    copy_file(source, gather)
                    gather(padding(source.entry.size))
                    done += source.entry.size
                    if done - reported >= 8 << 20:
                        self.on_event(StepAdvanced(step, done))
                        reported = done
            gather(END_OF_ARCHIVE)
            pipe.put(pending)
            pipe.finish()
            info = out.commit()
        self.on_event(StepFinished(step, f"{info.size} bytes"))
        return LayerResult(role, info.digest, info.size, len(sources), cached=False)

    def _cached(self, kind: str, key: str) -> LayerResult | None:
        path = self.cache_dir / kind / f"{key}.json"
        try:
            doc = json.loads(path.read_bytes())
            result = LayerResult(
                role=str(doc["role"]),
                digest=Digest(str(doc["digest"])),
                size=int(doc["size"]),
                entries=int(doc["entries"]),
                cached=True,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not self.store.has_blob(result.digest):
            return None
        self.store.touch_blob(result.digest)  # in use again: gc's grace period restarts
        return result

    def _remember(self, kind: str, key: str, layer: LayerResult) -> None:
        folder = self.cache_dir / kind
        folder.mkdir(parents=True, exist_ok=True)
        doc = {
            "role": layer.role,
            "digest": layer.digest,
            "size": layer.size,
            "entries": layer.entries,
        }
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(canonical_json(doc))
        tmp.replace(folder / f"{key}.json")  # a cache: losing it costs a rebuild, no fsync


# --- scanning ---------------------------------------------------------------------------


# A `.git` *file* marks a git worktree or submodule (it points at the real git
# directory, e.g. under a temporary path for `kiln pipeline run --revision`). It is
# VCS metadata, never app content, and must not change the digest of a commit's
# build. A `.git` directory matches this too and was already left out.
ALWAYS_EXCLUDED = (".git",)


def _selection(spec: ServiceSpec) -> Selection:
    return Selection(spec.build.include, [*spec.build.exclude, *ALWAYS_EXCLUDED])


def _context(spec: ServiceSpec, spec_dir: Path) -> Path:
    context = (spec_dir / spec.build.context).resolve()
    if not context.is_dir():
        raise NotFound(
            f"the build context {context} is not a directory",
            hint="build.context is relative to kiln.yaml",
        )
    return context


def _requirements(spec: ServiceSpec, spec_dir: Path) -> Path | None:
    if spec.build.requirements:
        path = spec_dir / spec.build.requirements
        if not path.is_file():
            raise NotFound(
                f"the requirements file {path} does not exist",
                hint="fix build.requirements in kiln.yaml, or remove it to build without deps",
            )
        return path
    context = _context(spec, spec_dir)
    return next((context / n for n in _REQUIREMENT_NAMES if (context / n).is_file()), None)


class _Pipeline:
    """Hands byte batches to a worker thread that calls ``sink`` on each, in order.

    hashlib and file writes release the GIL for large buffers, so hashing and
    writing one batch overlaps reading the next. The first error of the worker
    is raised in the caller at the next ``put`` or at ``finish``.
    """

    def __init__(self, sink: Callable[[bytearray], None]) -> None:
        self._sink = sink
        self._queue: queue.Queue[bytearray | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kiln-layer-writer", daemon=True)
        self._finished = False

    def __enter__(self) -> _Pipeline:
        self._thread.start()
        return self

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._sink(batch)
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def put(self, batch: bytearray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def finish(self) -> None:
        self._finished = True
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __exit__(self, *exc: object) -> None:
        if not self._finished:
            self._queue.put(None)
            self._thread.join()


# --- small helpers ----------------------------------------------------------------------


def _uncommitted(scanned: AppTree, state: SourceState, selection: Selection) -> list[str]:
    if state.revision is None:
        return []
    present = set(scanned.files())
    out = {p for p in present if p not in state.tracked or p in state.modified}
    out.update(p for p in state.modified if p not in present and selection.selects(p))
    return sorted(out)


def _key(data: Any) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


def _source_date_epoch(environ: Mapping[str, str]) -> int | None:
    raw = environ.get("SOURCE_DATE_EPOCH")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise InvalidInput(
            f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds",
            hint="see https://reproducible-builds.org/specs/source-date-epoch/",
        )
    return int(raw)


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _annotations(inputs: BuildInputs) -> dict[str, str]:
    out = {
        ANN_CREATED: _rfc3339(inputs.epoch),
        ANN_VERSION: inputs.version,
        ANN_TITLE: inputs.service,
    }
    if inputs.revision:
        out[ANN_REVISION] = inputs.revision
    if inputs.remote:
        out[ANN_SOURCE] = inputs.remote
    if inputs.dirty:
        out[LABEL_DIRTY] = "true"
    return out


def run_build(
    builder: Builder,
    spec: ServiceSpec,
    spec_dir: Path,
    *,
    allow_dirty: bool,
    actor: str,
    spec_file: Path | None = None,
) -> BuildResult:
    """The whole of ``kiln build``: resolve the inputs, refuse a dirty tree, build, tag, record."""
    scanned = builder.scan(spec, spec_dir)
    inputs = builder.inputs(
        spec, spec_dir, allow_dirty=allow_dirty, scanned=scanned, spec_file=spec_file
    )
    return builder.build(spec, spec_dir, inputs=inputs, scanned=scanned, actor=actor)


__all__ = [
    "BuildInputs",
    "BuildResult",
    "Builder",
    "LayerResult",
    "run_build",
]
