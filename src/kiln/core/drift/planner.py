"""``plan(desired, observed) -> Plan``: drift findings and the actions that heal them.

Pure and linear in the number of instances (one pass, sets and dicts). Rules, in
order:

1. a rollout in progress owns the environment: no findings, no actions, a note;
2. every instance of the environment is classified once: impostor or orphan,
   dead or failing its probes, wrong release / artifact / config, tampered tree,
   changed secret version, or good;
3. the count of good (and being-replaced) instances is compared with the
   declared replicas: missing ones are provisioned, surplus ones destroyed
   (newest first, so the ones that served longest stay);
4. the router's table is compared with the declared split as *sets*: one
   release at weight 100 whose backends are exactly its running, ready
   instances; no rules, no mirror, and a sticky cookie exactly when
   ``router.sticky`` declares one. Generation, order and defaults never count;
5. a paused environment, or one with ``selfHeal: false``, gets its findings and
   one ``ReportOnly`` action instead of healing.
"""

from __future__ import annotations

from typing import Any

from kiln.core.drift.model import (
    Action,
    DeadInstance,
    Desired,
    Destroy,
    ExtraInstance,
    Finding,
    Impostor,
    MissingInstance,
    Observed,
    Plan,
    Provision,
    ReapplyRoute,
    Replace,
    ReportOnly,
    Reunpack,
    RouteDrift,
    SecretVersionChanged,
    TamperedTree,
    WrongArtifact,
    WrongConfig,
)
from kiln.core.runtime.model import (
    ARTIFACT,
    CONFIG,
    ENVIRONMENT,
    RELEASE,
    SERVICE,
    Instance,
    State,
)
from kiln.core.traffic.table import RouteTable

ROLLOUT_NOTE = "rollout in progress: left to the rollout executor"


def plan(desired: Desired, observed: Observed) -> Plan:
    env = desired.environment
    if desired.rollout_in_progress:
        return Plan(env, (), (), ROLLOUT_NOTE)
    declared = desired.release
    findings: list[Finding] = []
    actions: list[Action] = []
    replace: list[tuple[Instance, str]] = []
    good: list[Instance] = []
    serving: list[Instance] = []  # what the declared table should route to
    tampered_users: dict[str, list[str]] = {}
    service, unhealthy, tampered = desired.service, observed.unhealthy, observed.tampered
    secrets = observed.secrets
    want_id = declared.id if declared is not None else None
    want_artifact = declared.artifact if declared is not None else None
    want_config = declared.config if declared is not None else None
    running, dead = State.RUNNING, State.DEAD
    for instance in observed.instances:
        labels = instance.labels
        if labels.get(SERVICE) != service or labels.get(ENVIRONMENT) != env:
            continue
        state = instance.state
        release = labels.get(RELEASE, "")
        artifact, config = labels.get(ARTIFACT, ""), labels.get(CONFIG, "")
        if (
            state is running
            and release == want_id
            and artifact == want_artifact
            and config == want_config
            and not unhealthy
            and not tampered
            and not secrets
        ):
            serving.append(instance)  # the common case, decided in one test
            good.append(instance)
            continue
        key = instance.id.value
        if state is State.IMPOSTOR:
            findings.append(Impostor(key, False, instance.detail))
            continue
        if state is State.ORPHAN:
            findings.append(Impostor(key, True, instance.detail))
            actions.append(Destroy(key, "orphan of this controller"))
            continue
        if declared is None or release != declared.id:
            findings.append(_stranger(instance, declared))
            actions.append(Destroy(key, "not the declared release"))
            continue
        if artifact != declared.artifact:
            findings.append(WrongArtifact(key, declared.artifact, artifact))
            actions.append(Destroy(key, "wrong artifact"))
            continue
        if config != declared.config:
            findings.append(WrongConfig(key, declared.config, config))
            actions.append(Destroy(key, "wrong config"))
            continue
        if state is dead:
            findings.append(DeadInstance(key, release, f"dead ({instance.detail or 'exited'})"))
            replace.append((instance, "dead"))
            continue
        failing = unhealthy.get(key)
        if failing is not None:
            findings.append(DeadInstance(key, release, f"failing its readiness probe: {failing}"))
            replace.append((instance, "unhealthy"))
            continue
        serving.append(instance)
        if artifact in tampered:
            tampered_users.setdefault(artifact, []).append(key)
            replace.append((instance, "tampered tree"))
            continue
        changed = _secret_change(instance, secrets) if secrets else None
        if changed is not None:
            findings.append(changed)
            replace.append((instance, f"secret {changed.secret} changed"))
            continue
        good.append(instance)
    for artifact, users in sorted(tampered_users.items()):
        findings.append(TamperedTree(artifact, tuple(observed.tampered[artifact]), tuple(users)))
        actions.insert(0, Reunpack(artifact))
    if declared is not None:
        _count(desired, declared.id, good, replace, findings, actions)
        route = _route_drift(
            declared.id, env, serving, observed.table, observed.data_plane, sticky=desired.sticky
        )
        if route is not None:
            findings.append(route)
            actions.append(ReapplyRoute(declared.id, None))
    elif observed.table is not None and observed.table.releases:
        findings.append(
            RouteDrift(
                {},
                _split(observed.table),
                "the environment declares no release but the router routes traffic",
            )
        )
    findings.sort(key=_order)
    if not findings:
        return Plan(env, (), ())
    if desired.paused or not desired.self_heal:
        why = "paused" if desired.paused else "selfHeal is off"
        return Plan(env, tuple(findings), (ReportOnly(f"{env} is {why}: reported, not healed"),))
    return Plan(env, tuple(findings), tuple(_ordered(actions)))


def _stranger(instance: Instance, declared: Any) -> Finding:
    key, labels = instance.id.value, instance.labels
    if declared is None:
        return ExtraInstance(key, instance.release, "runs but the environment declares no release")
    artifact, config = labels.get(ARTIFACT, ""), labels.get(CONFIG, "")
    if artifact != declared.artifact:
        return WrongArtifact(key, declared.artifact, artifact)
    if config != declared.config:
        return WrongConfig(key, declared.config, config)
    return ExtraInstance(key, instance.release, f"is not release {declared.id}")


def _secret_change(instance: Instance, current: Any) -> SecretVersionChanged | None:
    for name, running in sorted(instance.secrets.items()):
        now = current.get(name)
        if running is not None and now is not None and now != running:
            return SecretVersionChanged(instance.id.value, name, running, now)
    return None


def _count(
    desired: Desired,
    release: str,
    good: list[Instance],
    replace: list[tuple[Instance, str]],
    findings: list[Finding],
    actions: list[Action],
) -> None:
    want = desired.replicas
    surplus = len(good) + len(replace) - want
    for instance, why in replace:
        if surplus > 0:
            actions.append(Destroy(instance.id.value, f"{why}; surplus"))
            surplus -= 1
        else:
            actions.append(Replace(instance.id.value, release, why))
    if surplus > 0:
        newest = sorted(good, key=lambda i: (i.created, i.id.value), reverse=True)[:surplus]
        for instance in newest:
            findings.append(
                ExtraInstance(instance.id.value, release, f"is beyond the {want} declared replicas")
            )
            actions.append(Destroy(instance.id.value, "surplus"))
    have = len(good) + len(replace)
    if have < want:
        findings.append(MissingInstance(release, want, len(good)))
        actions.append(Provision(release, want - have))


def _split(table: RouteTable) -> dict[str, Any]:
    return {
        r.name: {"weight": r.weight, "backends": sorted(b.address for b in r.backends)}
        for r in table.releases
        if r.weight or r.backends
    }


def _route_drift(
    release: str,
    env: str,
    serving: list[Instance],
    table: RouteTable | None,
    data_plane: tuple[str, ...] = (),
    *,
    sticky: bool = False,
) -> RouteDrift | None:
    want = {(i.host, i.port) for i in serving}

    def expected() -> dict[str, Any]:
        return {release: {"weight": 100, "backends": sorted(f"{h}:{p}" for h, p in want)}}

    if table is None:
        if not want:
            return None  # nothing to route to yet; provisioning comes first
        return RouteDrift(expected(), None, "the router has no table")
    problems: list[str] = []
    if table.environment != env:
        problems.append(f"table is for environment {table.environment!r}")
    entry = None
    for other in table.releases:
        if other.name == release:
            entry = other
        elif other.weight or other.backends:
            problems.append(f"routes {other.weight}% to undeclared release {other.name}")
    if entry is None:
        problems.append(f"release {release} is not in the table")
    else:
        if entry.weight != 100:
            problems.append(f"release {release} has weight {entry.weight}, declared 100")
        have = {(b.host, b.port) for b in entry.backends}
        if have != want:
            if want - have:
                missing = sorted(f"{h}:{p}" for h, p in want - have)
                problems.append(f"ready instances not routed: {', '.join(missing)}")
            if have - want:
                extra = sorted(f"{h}:{p}" for h, p in have - want)
                problems.append(f"routes to non-serving backends: {', '.join(extra)}")
    if table.rules:
        problems.append(f"{len(table.rules)} match rule(s) that no rollout declares")
    if table.mirror is not None:
        problems.append(f"mirrors to {table.mirror.release}")
    if sticky and table.sticky is None:
        problems.append("stickiness is declared (router.sticky) but the table has none")
    elif not sticky and table.sticky is not None:
        problems.append(f"sticky cookie {table.sticky.cookie} that the spec does not declare")
    for listener in table.listeners:
        problems.append(
            f"port {listener.port} serves {listener.release}, which no rollout declares"
        )
    problems.extend(data_plane)
    if not problems:
        return None
    return RouteDrift(expected(), _split(table), "; ".join(problems))


_RANK = {
    "Impostor": 0,
    "DeadInstance": 1,
    "MissingInstance": 2,
    "WrongArtifact": 3,
    "WrongConfig": 4,
    "TamperedTree": 5,
    "SecretVersionChanged": 6,
    "ExtraInstance": 7,
    "RouteDrift": 8,
}


def _order(finding: Finding) -> tuple[int, str]:
    return _RANK[type(finding).__name__], finding.reason


def _ordered(actions: list[Action]) -> list[Action]:
    """Re-unpack, then start new instances, then the route, then destroy the old ones."""
    rank = {Reunpack: 0, Provision: 1, Replace: 2, ReapplyRoute: 3, Destroy: 4}
    return sorted(actions, key=lambda a: rank[type(a)])


__all__ = ["ROLLOUT_NOTE", "plan"]
