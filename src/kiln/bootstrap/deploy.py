"""Composing the controller: per-environment providers and routers, the executor,
admission, artifact references and the ledger, all from one state directory.

This is the only place that knows which adapter serves which port for a rollout.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from kiln.adapters.store.leader import FileLeaderLock
from kiln.bootstrap import artifacts as artifacts_boot
from kiln.bootstrap import dataplane
from kiln.bootstrap import runtime as runtime_boot
from kiln.bootstrap import trust as trust_boot
from kiln.bootstrap.database import desired_state
from kiln.bootstrap.ledger import recorder as ledger_recorder
from kiln.core.digest import Digest, hex_of
from kiln.core.ledger.kinds import EventKind
from kiln.core.release import Release
from kiln.core.runtime.model import ImageRef, LaunchSpec
from kiln.core.runtime.specs import launch_spec
from kiln.core.spec.models import Environment, ServiceSpec
from kiln.errors import NotFound, Refused
from kiln.ports.clock import SystemClock
from kiln.ports.leader import ClosableLeaderLock, LeaderLock
from kiln.ports.runtime import Provider
from kiln.ports.state import DesiredState
from kiln.services import artifacts as artifact_service
from kiln.services.controller import HEAL_INTERVAL, Controller
from kiln.services.reconcile import Reconciler, store_versions, tree_checker, tree_refresher
from kiln.services.rollout import CommitInfo, Launcher, RolloutExecutor
from kiln.services.unpack import unpack
from kiln.services.verify import AdmittedUnsigned, NotAdmitted


def release_environment(document: dict[str, object]) -> Environment:
    """The environment a release was made with, rebuilt from its stored document."""
    fields = {k: document[k] for k in ("replicas", "config", "secrets", "runtime", "health")}
    return Environment.model_validate({"name": document["environment"], **fields})


def launcher(state_dir: Path, spec: ServiceSpec, desired: DesiredState) -> Launcher:
    store = artifacts_boot.store(state_dir)

    def launch(release: Release) -> LaunchSpec:
        document = desired.release_config(release.id)
        if document is None:
            raise NotFound(f"release {release.id} has no stored config")
        env = release_environment(document)
        manifest = artifact_service.ensure_deployable(store, Digest(release.artifact))
        image_config = artifact_service.load_config(store, manifest)
        root = unpack(store, Digest(release.artifact), state_dir / "instances")
        image = None
        if env.runtime.provider.value == "podman":
            layout = state_dir / "run" / "layouts" / hex_of(Digest(release.artifact))[:16]
            if not layout.exists():
                artifact_service.export_layout(store, Digest(release.artifact), layout)
            image = ImageRef(layout=layout, reference="kiln")
        return launch_spec(
            service=spec.service,
            environment=env,
            release=release,
            root=root,
            image_config=image_config,
            image=image,
        )

    return launch


def resolver(state_dir: Path) -> Callable[[str], Digest]:
    store = artifacts_boot.store(state_dir)

    def resolve(reference: str) -> Digest:
        if reference == "latest":
            newest = sorted(store.artifacts(), key=lambda a: a.created)
            if not newest:
                raise NotFound("no artifact has been built yet", hint="run `kiln build`")
            return newest[-1].digest
        return artifact_service.resolve_ref(store, reference)

    return resolve


def admitter(
    state_dir: Path, spec: ServiceSpec, policy: Path
) -> Callable[[Digest, str, str], None]:
    store = artifacts_boot.store(state_dir)
    ledger = ledger_recorder(state_dir)

    def admit(digest: Digest, environment: str, actor: str) -> None:
        artifact_service.ensure_deployable(store, digest)  # revoked or incomplete: refused
        env = spec.environment(environment)
        verdict = trust_boot.admission(state_dir, policy, digest, env)
        if isinstance(verdict, NotAdmitted):
            raise verdict.to_error()
        if isinstance(verdict, AdmittedUnsigned):
            ledger.record(
                EventKind.UNSIGNED_DEPLOY,
                actor=actor,
                artifact=digest,
                environment=environment,
                details={"reasons": verdict.reasons},
            )
        # Promotion: ran healthy in the previous environment, and this one's gates
        # pass; records the verdicts and raises Refused with every reason if not.
        # Imported here: the gates (CEL, OSV) need not slow the controller's start.
        from kiln.bootstrap import pipeline as pipeline_boot

        pipeline_boot.promote(
            state_dir, spec, state_dir.parent, policy, digest, environment, actor=actor
        )

    return admit


def commit_info(state_dir: Path) -> Callable[[Digest], CommitInfo]:
    store = artifacts_boot.store(state_dir)

    def info(digest: Digest) -> CommitInfo:
        try:
            manifest = artifact_service.load_manifest(store, digest)
        except (NotFound, Refused):
            return CommitInfo()
        notes = manifest.annotations
        return CommitInfo(
            commit=notes.get("org.opencontainers.image.revision"),
            commit_time=notes.get("dev.kiln.commit-time")
            or notes.get("org.opencontainers.image.created"),
        )

    return info


def leader_lock(
    run_dir: Path, spec: ServiceSpec | None, database: str | None
) -> ClosableLeaderLock:
    """One leader per environment: a PostgreSQL advisory lock when controllers share a
    database (``KILN_DATABASE``), otherwise a ``flock`` in the local run directory."""
    if database:
        from kiln.adapters.store.pgleader import PostgresLeaderLock

        return PostgresLeaderLock(database, namespace=spec.service if spec else "kiln")
    return FileLeaderLock(run_dir)


def controller(
    state_dir: Path,
    spec: ServiceSpec | None,
    *,
    address: str,
    leader: LeaderLock,
    policy: Path,
    heal_interval: float = HEAL_INTERVAL,
    database: str | None = None,
) -> Controller:
    """The controller of ``spec``; with ``database`` (``KILN_DATABASE``) its desired
    state, analysis journal and ledger are the PostgreSQL ones every controller of
    the service shares, and ``leader`` must be that database's lock (same terms)."""
    clock = SystemClock()
    if spec is None:
        return Controller(spec=None, leader=leader, clock=clock, address=address)
    desired = desired_state(state_dir, namespace=spec.service, database=database)
    ledger = ledger_recorder(state_dir, database=database)
    launch = launcher(state_dir, spec, desired)
    actor = f"controller:{os.getpid()}"
    dataplane.start_routers(state_dir, list(spec.environments))
    executors: dict[str, RolloutExecutor] = {}
    reconcilers: dict[str, Reconciler] = {}
    providers: dict[str, Provider] = {}
    for env in spec.environments:
        kind = env.runtime.provider.value
        if kind not in providers:
            providers[kind] = runtime_boot.provider(kind, state_dir)
            # Adopt the instances that outlived the last controller; reap its orphans.
            providers[kind].recover()
        provider = providers[kind]
        router = dataplane.router_for(state_dir, env)
        executors[env.name] = RolloutExecutor(
            spec=spec,
            desired=desired,
            provider=provider,
            router=router,
            recorder=ledger,
            clock=clock,
            launcher=launch,
            actor=actor,
            commit_info=commit_info(state_dir),
            journal=desired,
        )
        reconcilers[env.name] = Reconciler(
            spec=spec,
            desired=desired,
            provider=provider,
            router=router,
            recorder=ledger,
            executor=executors[env.name],
            actor=actor,
            verify_tree=tree_checker(state_dir / "instances"),
            refresh_tree=tree_refresher(state_dir / "instances"),
            secret_versions=store_versions(runtime_boot.secret_store(state_dir)),
        )
    return Controller(
        spec=spec,
        leader=leader,
        clock=clock,
        address=address,
        desired=desired,
        executors=executors,
        reconcilers=reconcilers,
        heal_interval=heal_interval,
        admit=admitter(state_dir, spec, policy),
        resolve=resolver(state_dir),
        urls={
            e.name: f"http://{dataplane.listen_address(state_dir, e)}" for e in spec.environments
        },
        preview_urls={
            e.name: url
            for e in spec.environments
            if (url := dataplane.preview_url(state_dir, e)) is not None
        },
    )
