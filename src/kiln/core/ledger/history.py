"""Answers the ledger gives about releases: history, what ran when, and diffs. Pure.

Each function takes events already read from an ``EventLog`` and folds them; the
event fields they rely on are the ones ``docs/ledger.md`` ("Deployment events")
requires the rollout controller to write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kiln.core.ledger.events import LINK_CONFIG, LINK_PREVIOUS_RELEASE, LINK_SBOM, Event
from kiln.core.ledger.kinds import EventKind


@dataclass
class Deployment:
    """One attempt to take an environment to a release, from its start to its end."""

    deployment: str
    release: str | None
    artifact: str | None
    config: str | None
    started_by: str
    started_at: datetime
    start_seq: int
    finished_at: datetime | None = None
    outcome: str = "in progress"
    previous_release: str | None = None


def _deployment_id(event: Event) -> str:
    raw = event.details.get("deployment")
    if isinstance(raw, str) and raw:
        return raw
    return event.release or f"seq:{event.seq}"


def history(events: Iterable[Event]) -> list[Deployment]:
    """Deployments of one environment's events, oldest first, with their outcome."""
    by_id: dict[str, Deployment] = {}
    order: list[str] = []
    for event in events:
        key = _deployment_id(event)
        if event.kind is EventKind.DEPLOY_START:
            if key not in by_id:
                order.append(key)
            by_id[key] = Deployment(
                deployment=key,
                release=event.release,
                artifact=event.artifact,
                config=event.links.get(LINK_CONFIG),
                started_by=event.actor,
                started_at=event.time,
                start_seq=event.seq,
                previous_release=event.links.get(LINK_PREVIOUS_RELEASE),
            )
            continue
        found = by_id.get(key)
        if found is None:
            continue
        if event.kind is EventKind.DEPLOY_COMPLETE:
            found.finished_at, found.outcome = event.time, "succeeded"
        elif event.kind is EventKind.ROLLBACK:
            found.finished_at, found.outcome = event.time, "rolled back"
        elif event.kind is EventKind.INCIDENT and found.outcome == "succeeded":
            found.outcome = "succeeded, incident"
    return [by_id[k] for k in order]


@dataclass(frozen=True)
class Running:
    release: str
    weight: float
    artifact: str | None
    config: str | None


@dataclass(frozen=True)
class Snapshot:
    """What served an environment at ``at``: the route weights and what each release is."""

    environment: str
    at: datetime
    releases: list[Running]
    last_seq: int | None  # the latest event the answer is based on


def _weights(raw: Any) -> dict[str, float] | None:
    if not isinstance(raw, Mapping):
        return None
    out: dict[str, float] = {}
    for name, value in raw.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[str(name)] = float(value)
    return out


def running_at(events: Iterable[Event], *, environment: str, at: datetime) -> Snapshot:
    """Replay one environment's events up to ``at`` (inclusive) into its route weights."""
    weights: dict[str, float] = {}
    info: dict[str, tuple[str | None, str | None]] = {}
    last: int | None = None
    for event in events:
        if event.environment != environment or event.time > at:
            continue
        last = event.seq
        if event.release and (event.artifact or event.links.get(LINK_CONFIG)):
            old = info.get(event.release, (None, None))
            info[event.release] = (
                event.artifact or old[0],
                event.links.get(LINK_CONFIG) or old[1],
            )
        given = _weights(event.details.get("weights"))
        if event.kind in (EventKind.TRAFFIC_CHANGE, EventKind.ROLLOUT_STEP):
            if given is not None:
                weights = given
        elif event.kind is EventKind.DEPLOY_COMPLETE:
            if given is not None:
                weights = given
            elif event.release:
                weights = {event.release: 100.0}
        elif event.kind is EventKind.ROLLBACK:
            restored = event.links.get(LINK_PREVIOUS_RELEASE)
            if given is not None:
                weights = given
            elif restored:
                weights = {restored: 100.0}
        elif event.kind is EventKind.DECOMMISSION and event.release:
            weights.pop(event.release, None)
    releases = [
        Running(name, weight, *info.get(name, (None, None)))
        for name, weight in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
        if weight > 0
    ]
    return Snapshot(environment=environment, at=at, releases=releases, last_seq=last)


@dataclass
class Profile:
    """Everything the ledger links to one release or artifact."""

    name: str
    artifacts: set[str] = field(default_factory=set)
    configs: set[str] = field(default_factory=set)
    environments: set[str] = field(default_factory=set)
    attestations: dict[str, set[str]] = field(default_factory=dict)
    sboms: set[str] = field(default_factory=set)
    dependencies: dict[str, str] = field(default_factory=dict)
    events: int = 0


def _dependency(entry: Any) -> tuple[str, str] | None:
    """``name==version``, ``pkg:type/name@version`` or ``{"name", "version"}``."""
    if isinstance(entry, Mapping):
        name, version = entry.get("name"), entry.get("version")
        if isinstance(name, str):
            return name, str(version or "")
        return None
    if not isinstance(entry, str):
        return None
    if entry.startswith("pkg:"):
        body = entry.split("?", 1)[0].split("#", 1)[0]
        name, _, version = body.rpartition("@") if "@" in body else (body, "", "")
        return name, version
    if "==" in entry:
        name, version = entry.split("==", 1)
        return name, version
    return entry, ""


def profile(events: Iterable[Event], name: str) -> Profile:
    """Fold every event whose release or artifact is ``name`` and, for a release, every
    event of the artifacts it ran (their build, SBOM and attestations)."""
    out = Profile(name)
    every = list(events)
    artifacts = {e.artifact for e in every if e.release == name and e.artifact}
    for event in every:
        if name not in (event.release, event.artifact) and event.artifact not in artifacts:
            continue
        out.events += 1
        if event.artifact:
            out.artifacts.add(event.artifact)
        if event.environment:
            out.environments.add(event.environment)
        if config := event.links.get(LINK_CONFIG):
            out.configs.add(config)
        if sbom := event.links.get(LINK_SBOM):
            out.sboms.add(sbom)
        for kind, digest in event.attestations.items():
            out.attestations.setdefault(kind, set()).add(digest)
        deps = event.details.get("dependencies")
        if isinstance(deps, list):
            for entry in deps:
                parsed = _dependency(entry)
                if parsed:
                    out.dependencies[parsed[0]] = parsed[1]
    return out


@dataclass(frozen=True)
class Change:
    what: str  # "artifact", "config", "attestation.<type>", "sbom", "dependency"
    name: str
    a: str | None
    b: str | None


def diff(a: Profile, b: Profile) -> list[Change]:
    """What differs between two profiles, field by field; equal fields are left out."""
    changes: list[Change] = []

    def sets(what: str, left: set[str], right: set[str]) -> None:
        if left != right:
            a_text = ", ".join(sorted(left)) or None
            changes.append(Change(what, what, a_text, ", ".join(sorted(right)) or None))

    sets("artifact", a.artifacts, b.artifacts)
    sets("config", a.configs, b.configs)
    sets("sbom", a.sboms, b.sboms)
    for kind in sorted(set(a.attestations) | set(b.attestations)):
        none: set[str] = set()
        sets(f"attestation.{kind}", a.attestations.get(kind, none), b.attestations.get(kind, none))
    for dep in sorted(set(a.dependencies) | set(b.dependencies)):
        left, right = a.dependencies.get(dep), b.dependencies.get(dep)
        if left != right:
            changes.append(Change("dependency", dep, left, right))
    return changes
