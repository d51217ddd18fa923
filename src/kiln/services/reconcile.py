"""The reconciler: observe an environment, plan (pure), record, heal by replacement.

``scan`` observes and plans; ``reconcile`` also records every finding
(``drift.found``) and, unless told ``dry_run`` or the environment is paused or
has ``selfHeal: false``, applies the actions and records each one (``heal``).

Healing order keeps traffic whole: fresh instances first (started from the
declared release through the rollout executor's launcher, and waited for),
then the declared route table built from ready instances only, then the old
instances are destroyed (drained by the provider). A tampered tree is set aside
before anything is started, so the replacements come from a fresh unpack.

The same finding seen again on the next scan is not recorded twice; it is
recorded again once it went away and came back.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kiln.core.digest import Digest, hex_of
from kiln.core.drift.model import (
    DeclaredRelease,
    Desired,
    Destroy,
    Finding,
    Observed,
    Plan,
    Provision,
    ReapplyRoute,
    Replace,
    ReportOnly,
    Reunpack,
    action_json,
    finding_json,
    finding_kind,
)
from kiln.core.drift.planner import plan
from kiln.core.ledger.kinds import EventKind
from kiln.core.release import ReleaseId
from kiln.core.runtime.model import ARTIFACT, ENVIRONMENT, SERVICE, Healthy, InstanceId, State
from kiln.core.spec.models import Environment, ServiceSpec
from kiln.core.spec.models import SecretSource as SpecSecretSource
from kiln.errors import IntegrityError, NotFound
from kiln.ports.ledger import Recorder
from kiln.ports.runtime import Provider
from kiln.ports.secrets import SecretStore
from kiln.ports.state import DesiredState
from kiln.ports.traffic import LiveView, Router
from kiln.services.rollout import DRAIN_TIMEOUT, RolloutExecutor
from kiln.services.unpack import remove_tree, verify_unpacked

VerifyTree = Callable[[str], tuple[str, ...]]
"""artifact digest -> paths that differ in its unpacked tree (empty when intact or not unpacked)."""

RefreshTree = Callable[[str], None]
"""artifact digest -> set its unpacked tree aside so the next launch unpacks it afresh."""

SecretVersions = Callable[[Environment], Mapping[str, int]]
"""environment -> current store version per secret variable that follows the latest."""


class Reconciler:
    def __init__(
        self,
        *,
        spec: ServiceSpec,
        desired: DesiredState,
        provider: Provider,
        router: Router,
        recorder: Recorder,
        executor: RolloutExecutor,
        actor: str,
        verify_tree: VerifyTree | None = None,
        refresh_tree: RefreshTree | None = None,
        secret_versions: SecretVersions | None = None,
        probe: bool = True,
    ) -> None:
        self.spec = spec
        self._desired = desired
        self._provider = provider
        self._router = router
        self._recorder = recorder
        self._executor = executor
        self._actor = actor
        self._verify_tree = verify_tree
        self._refresh_tree = refresh_tree
        self._secret_versions = secret_versions
        self._probe = probe
        self._failures: dict[str, int] = {}
        self._reported: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # --- observing -------------------------------------------------------------------------

    def desired_of(self, environment: str) -> Desired:
        env = self._environment(environment)
        declared = self._desired.environment(environment)
        rollout = self._desired.rollout(environment)
        chosen = declared.pinned or declared.stable
        release = self._desired.release(ReleaseId(chosen)) if chosen else None
        return Desired(
            service=self.spec.service,
            environment=environment,
            replicas=env.replicas,
            release=(
                DeclaredRelease(release.id, release.artifact, release.config)
                if release is not None
                else None
            ),
            paused=declared.paused,
            rollout_in_progress=rollout is not None and not rollout.phase.terminal,
            self_heal=env.self_heal,
            sticky=env.router.sticky,
        )

    def observe(self, environment: str, desired: Desired) -> Observed:
        env = self._environment(environment)
        instances = self._provider.list({SERVICE: self.spec.service, ENVIRONMENT: environment})
        unhealthy: dict[str, str] = {}
        artifacts: set[str] = set()
        for instance in instances:
            if instance.state is State.RUNNING:
                artifacts.add(instance.labels.get(ARTIFACT, ""))
        if self._probe and not desired.rollout_in_progress:
            for instance in instances:
                if instance.state is not State.RUNNING:
                    continue
                key = instance.id.value
                try:
                    result = self._provider.health(instance.id, timeout=env.health.timeout)
                except NotFound:
                    continue  # destroyed between list and probe
                if isinstance(result, Healthy):
                    self._failures.pop(key, None)
                    continue
                count = self._failures.get(key, 0) + 1
                self._failures[key] = count
                if count >= env.health.failure_threshold:
                    unhealthy[key] = result.reason
        tampered: dict[str, tuple[str, ...]] = {}
        if self._verify_tree is not None and desired.release is not None:
            for artifact in sorted(artifacts & {desired.release.artifact}):
                paths = self._verify_tree(artifact)
                if paths:
                    tampered[artifact] = paths
        secrets = self._secret_versions(env) if self._secret_versions else {}
        table = self._router.current()
        live = self._router.differences() if isinstance(self._router, LiveView) else []
        return Observed(
            instances=instances,
            table=table,
            data_plane=tuple(live),
            unhealthy=unhealthy,
            tampered=tampered,
            secrets=secrets,
        )

    def scan(self, environment: str) -> Plan:
        desired = self.desired_of(environment)
        return plan(desired, self.observe(environment, desired))

    # --- healing ---------------------------------------------------------------------------

    def reconcile(self, environment: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Scan, record new findings, heal (unless ``dry_run``); a JSON-ready report."""
        with self._lock:
            found = self.scan(environment)
            self._record_findings(environment, found)
            report = found.to_json()
            report["dryRun"] = dry_run
            report["healed"] = []
            if dry_run or not found.actions or isinstance(found.actions[0], ReportOnly):
                return report
            report["healed"] = self._heal(environment, found)
            return report

    def _heal(self, environment: str, found: Plan) -> list[dict[str, Any]]:
        healed: list[dict[str, Any]] = []
        releases: dict[str, int] = {}
        leaving: set[str] = set()
        route: str | None = None
        for action in found.actions:
            match action:
                case Reunpack(artifact):
                    if self._refresh_tree is not None:
                        self._refresh_tree(artifact)
                    healed.append(self._heal_record(environment, action, {}))
                case Provision(release, count):
                    releases[release] = releases.get(release, 0) + count
                    route = release
                case Replace(instance, release, _why):
                    releases[release] = releases.get(release, 0) + 1
                    route = release
                case Destroy(instance, _why):
                    leaving.add(instance)
                case ReapplyRoute(release, _table):
                    route = release
        started: dict[str, list[str]] = {}
        for release, count in sorted(releases.items()):
            started[release] = self._executor.provision(environment, ReleaseId(release), count)
        # A live instance goes only once its replacement is ready; a dead one always
        # (it serves nothing). A replacement that failed to start is retried next scan.
        budget = {release: len(ids) for release, ids in started.items()}
        going: set[str] = set()
        for action in found.actions:
            if isinstance(action, Replace) and (
                action.reason == "dead" or budget.get(action.release, 0) > 0
            ):
                if action.reason != "dead":
                    budget[action.release] -= 1
                going.add(action.instance)
        leaving |= going
        table = None
        if route is not None:
            table = self._executor.route_release(
                environment,
                ReleaseId(route),
                exclude=frozenset(leaving),
                force=any(isinstance(a, ReapplyRoute) for a in found.actions),
            )
        for action in found.actions:
            match action:
                case Provision(release, _count):
                    healed.append(
                        self._heal_record(environment, action, {"started": started[release]})
                    )
                case Replace(instance, release, _why):
                    if instance in going:
                        self._destroy(instance)
                        extra: dict[str, Any] = {"started": started[release]}
                    else:
                        extra = {"started": [], "kept": "its replacement did not become ready"}
                    healed.append(self._heal_record(environment, action, extra))
                case Destroy(instance, _why):
                    self._destroy(instance)
                    healed.append(self._heal_record(environment, action, {}))
                case ReapplyRoute():
                    generation = {"generation": table.generation if table else None}
                    healed.append(self._heal_record(environment, action, generation))
        return healed

    def _destroy(self, instance: str) -> None:
        with contextlib.suppress(NotFound):  # already gone: the goal is met
            self._provider.destroy(InstanceId(instance), drain_timeout=DRAIN_TIMEOUT)
        self._failures.pop(instance, None)

    # --- the ledger --------------------------------------------------------------------------

    def _record_findings(self, environment: str, found: Plan) -> None:
        seen = {f.reason for f in found.findings}
        before = self._reported.get(environment, set())
        release = self._declared_id(environment)
        for finding in found.findings:
            if finding.reason in before:
                continue
            self._recorder.record(
                EventKind.DRIFT_FOUND,
                actor=self._actor,
                environment=environment,
                release=release,
                details=_plain(finding),
            )
        self._reported[environment] = seen

    def _heal_record(self, environment: str, action: Any, extra: dict[str, Any]) -> dict[str, Any]:
        details = {**action_json(action), **extra}
        self._recorder.record(
            EventKind.HEAL,
            actor=self._actor,
            environment=environment,
            release=self._declared_id(environment),
            details=details,
        )
        return details

    def _declared_id(self, environment: str) -> str | None:
        declared = self._desired.environment(environment)
        return declared.pinned or declared.stable

    def _environment(self, name: str) -> Environment:
        try:
            return self.spec.environment(name)
        except KeyError:
            known = ", ".join(e.name for e in self.spec.environments)
            raise NotFound(f"no environment {name!r} in the spec", hint=f"known: {known}") from None


def _plain(finding: Finding) -> dict[str, Any]:
    data = finding_json(finding)
    data["kind"] = finding_kind(finding)
    return data


def store_versions(store: SecretStore) -> SecretVersions:
    """Current versions of the store secrets an environment follows at "latest"
    (no ``version:`` in the spec); names and numbers only, never a value."""

    def versions(env: Environment) -> dict[str, int]:
        follows = {
            name: ref.key
            for name, ref in env.secrets.items()
            if ref.source is SpecSecretSource.STORE and ref.version is None
        }
        if not follows:
            return {}
        latest = {info.name: info.latest for info in store.list()}
        return {name: latest[key] for name, key in follows.items() if key in latest}

    return versions


def tree_checker(instances: Path) -> VerifyTree:
    """Re-verify unpacked trees under ``instances`` (``services.unpack.verify_unpacked``)."""

    def verify(artifact: str) -> tuple[str, ...]:
        try:
            found = verify_unpacked(instances, Digest(artifact))
        except NotFound:
            return ()  # not unpacked here (another provider's layout): nothing to verify
        except IntegrityError:
            return ("tree.json",)
        return tuple(sorted({*found.added, *found.removed, *found.changed}))

    return verify


def tree_refresher(instances: Path) -> RefreshTree:
    """Move a tampered tree aside (one rename), then delete it; the next launch unpacks
    the artifact again from the store. Running instances keep their open files."""

    def refresh(artifact: str) -> None:
        home = instances / hex_of(Digest(artifact))
        if not home.exists():
            return
        aside = instances / f".tampered-{hex_of(Digest(artifact))[:12]}-{secrets.token_hex(4)}"
        home.rename(aside)
        remove_tree(aside)

    return refresh


__all__ = ["Reconciler", "store_versions", "tree_checker", "tree_refresher"]
