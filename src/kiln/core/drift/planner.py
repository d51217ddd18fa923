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
   instances; no rules, no mirror. Generation, order and defaults never count;
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
from kiln.core.runtime.model import ARTIFACT, CONFIG, ENVIRONMENT, SERVICE, Instance, State
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
    for instance in observed.instances:
        labels = instance.labels
        if labels.get(SERVICE) != desired.service or labels.get(ENVIRONMENT) != env:
            continue
        key = instance.id.value
        state = instance.state
        if state is State.IMPOSTOR:
            findings.append(Impostor(key, False, instance.detail))
            continue
        if state is State.ORPHAN:
            findings.append(Impostor(key, True, instance.detail))
            actions.append(Destroy(key, "orphan of this controller"))
            continue
        release = instance.release
        if declared is None or release != declared.id:
            findings.append(_stranger(instance, declared))
            actions.append(Destroy(key, "not the declared release"))
            continue
        artifact, config = labels.get(ARTIFACT, ""), labels.get(CONFIG, "")
        if artifact != declared.artifact:
            findings.append(WrongArtifact(key, declared.artifact, artifact))
            actions.append(Destroy(key, "wrong artifact"))
            continue
        if config != declared.config:
            findings.append(WrongConfig(key, declared.config, config))
            actions.append(Destroy(key, "wrong config"))
            continue
        if state is State.DEAD:
            findings.append(DeadInstance(key, release, f"dead ({instance.detail or 'exited'})"))
            replace.append((instance, "dead"))
            continue
        failing = observed.unhealthy.get(key)
        if failing is not None:
            findings.append(DeadInstance(key, release, f"failing its readiness probe: {failing}"))
            replace.append((instance, "unhealthy"))
            continue
        serving.append(instance)
        if artifact in observed.tampered:
            tampered_users.setdefault(artifact, []).append(key)
            replace.append((instance, "tampered tree"))
            continue
        changed = _secret_change(instance, observed.secrets)
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
        route = _route_drift(declared.id, env, serving, observed.table)
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
    release: str, env: str, serving: list[Instance], table: RouteTable | None
) -> RouteDrift | None:
    backends = sorted(i.address for i in serving)
    expected = {release: {"weight": 100, "backends": backends}}
    if table is None:
        if not backends:
            return None  # nothing to route to yet; provisioning comes first
        return RouteDrift(expected, None, "the router has no table")
    found = _split(table)
    problems: list[str] = []
    if table.environment != env:
        problems.append(f"table is for environment {table.environment!r}")
    for name in sorted(found.keys() - expected.keys()):
        problems.append(f"routes {found[name]['weight']}% to undeclared release {name}")
    entry = found.get(release)
    if entry is None:
        problems.append(f"release {release} is not in the table")
    else:
        if entry["weight"] != 100:
            problems.append(f"release {release} has weight {entry['weight']}, declared 100")
        have, want = set(entry["backends"]), set(backends)
        if want - have:
            problems.append(f"ready instances not routed: {', '.join(sorted(want - have))}")
        if have - want:
            problems.append(f"routes to non-serving backends: {', '.join(sorted(have - want))}")
    if table.rules:
        problems.append(f"{len(table.rules)} match rule(s) that no rollout declares")
    if table.mirror is not None:
        problems.append(f"mirrors to {table.mirror.release}")
    if not problems:
        return None
    return RouteDrift(expected, found, "; ".join(problems))


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
