"""The dashboard's view: one JSON document holding everything the page shows.

``Dashboard.snapshot()`` joins what the controller already knows (``Controller.status``:
stable release, rollout, step, analysis figures) with what only the ports can say
right now: the route table each environment's router serves (weights per
release), the instances its provider lists and the router's view of their
health, the newest ledger events with the ledger's verification, and DORA's four
keys per environment. The API serves it at ``GET /v1/dashboard`` (read role); the
page polls it.

Each part is read on its own, so one part failing (a router that does not
answer) shows as that part's error instead of blanking the page. The document
names releases, digests, instances and secret *names* only: never a secret value
or a token. Snapshots are cached for ``refresh`` seconds so any number of open
tabs costs the controller one snapshot per interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kiln.core.digest import Digest, short
from kiln.core.rollout import baseline as fresh
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.core.runtime.model import ENVIRONMENT, Instance, State
from kiln.core.spec.models import Environment
from kiln.core.traffic.metrics import DataPlaneHealth
from kiln.core.traffic.table import RouteTable
from kiln.errors import KilnError
from kiln.ports.clock import Clock
from kiln.ports.ledger import EventLog
from kiln.ports.runtime import Provider
from kiln.ports.state import DesiredState
from kiln.ports.traffic import Router
from kiln.services.report import dora, dora_json

RECENT_EVENTS = 25  # enough to see a whole rollout's transitions at a glance
DORA_WINDOW = timedelta(days=30)  # the same default window as `kiln report dora`
REFRESH = 0.5  # seconds a snapshot is reused: the page polls every second


@dataclass(frozen=True)
class ArtifactFacts:
    """What a person recognises an artifact by, besides its digest."""

    version: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class LedgerCheck:
    """The ledger's last verification: ``verified`` None means not checked (yet)."""

    verified: bool | None
    size: int
    checked: str  # RFC 3339, or "" when never checked
    detail: str = ""


@dataclass(frozen=True)
class EnvironmentPorts:
    """The ports one environment is driven through (the executor's own)."""

    spec: Environment
    provider: Provider
    router: Router


class LedgerWatch:
    """The ledger's verification, redone when the log has grown (at most every
    ``every`` seconds) and at least every ``stale`` seconds even when it has not.

    A full check reads every entry (3.6 s at a million events, docs/status.md), so
    it is never done per request; the page shows when it was last done.
    ``verify`` returns (verified, size checked, detail).
    """

    def __init__(
        self,
        verify: Callable[[], tuple[bool, int, str]],
        *,
        size: Callable[[], int],
        clock: Clock,
        every: float = 5.0,
        stale: float = 60.0,
    ) -> None:
        self._verify = verify
        self._size = size
        self._clock = clock
        self._every = every
        self._stale = stale
        self._last: tuple[float, LedgerCheck] | None = None

    def __call__(self) -> LedgerCheck:
        now = self._clock.monotonic()
        if self._last is not None:
            at, check = self._last
            grew = self._size() != check.size
            if now - at < (self._every if grew else self._stale):
                return check
        try:
            verified, size, detail = self._verify()
        except KilnError as exc:  # an unreadable or forged checkpoint: not verified
            verified, size, detail = False, self._size(), exc.message
        check = LedgerCheck(verified, size, self._clock.now().isoformat(), detail)
        self._last = (now, check)
        return check


class Dashboard:
    def __init__(
        self,
        *,
        status: Callable[[], dict[str, Any]],
        environments: Mapping[str, EnvironmentPorts],
        desired: DesiredState | None,
        events: EventLog | None,
        check_ledger: Callable[[], LedgerCheck],
        artifact_facts: Callable[[str], ArtifactFacts],
        clock: Clock,
        recent: int = RECENT_EVENTS,
        refresh: float = REFRESH,
    ) -> None:
        self._status = status
        self._environments = environments
        self._desired = desired
        self._events = events
        self._check_ledger = check_ledger
        self._artifact_facts = artifact_facts
        self._clock = clock
        self._recent = recent
        self._refresh = refresh
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None

    @classmethod
    def status_only(
        cls,
        status: Callable[[], dict[str, Any]],
        *,
        desired: DesiredState | None,
        clock: Clock,
        why: str,
    ) -> Dashboard:
        """What the controller's status alone can show (no ports, no ledger)."""
        return cls(
            status=status,
            environments={},
            desired=desired,
            events=None,
            check_ledger=lambda: LedgerCheck(None, 0, "", why),
            artifact_facts=lambda _artifact: ArtifactFacts(),
            clock=clock,
        )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:  # one snapshot at a time; the others reuse it
            now = self._clock.monotonic()
            if self._cached is not None and now - self._cached[0] < self._refresh:
                return self._cached[1]
            view = self._build()
            self._cached = (now, view)
            return view

    # --- assembly --------------------------------------------------------------------

    def _build(self) -> dict[str, Any]:
        status = self._status()
        now = self._clock.now()
        # One listing per provider per snapshot (a process listing scans /proc),
        # shared by the environments it runs.
        listings: dict[int, list[Instance] | KilnError] = {}
        return {
            "generated": now.isoformat(),
            "service": status.get("service"),
            "controller": {
                "version": status.get("version"),
                "started": status.get("started"),
            },
            "environments": [
                self._environment(env, now, listings) for env in status["environments"]
            ],
            "ledger": self._ledger(),
        }

    def _environment(
        self, env: dict[str, Any], now: datetime, listings: dict[int, list[Instance] | KilnError]
    ) -> dict[str, Any]:
        name = str(env["name"])
        out: dict[str, Any] = {
            "name": name,
            "url": env.get("url"),
            "previewUrl": env.get("previewUrl"),  # while a blue/green preview port is open
            "leader": bool(env.get("leader")),
            "note": env.get("note") or "",
            "error": env.get("error") or "",
            "stable": self._release(env.get("stable")),
            "rollout": None,
        }
        ports = self._environments.get(name)
        rollout = env.get("rollout")
        if rollout:
            out["rollout"] = self._rollout(name, rollout, ports.spec if ports else None)
        table: RouteTable | None = None
        health: DataPlaneHealth | None = None
        if ports is not None:
            try:
                table = ports.router.current()
                health = ports.router.health()
                out["dataPlane"] = {
                    "serving": health.serving,
                    "generation": health.generation,
                    "detail": health.detail,
                }
            except KilnError as exc:
                out["dataPlane"] = {"serving": False, "generation": None, "detail": exc.message}
            listed = _listing(ports.provider, listings)
            if isinstance(listed, KilnError):
                out["instances"] = []
                out["instancesError"] = listed.message
            else:
                mine = [i for i in listed if i.labels.get(ENVIRONMENT) == name]
                out["instances"] = instances_json(mine, table, health)
        out["weights"] = self._weights(table, env)
        out["dora"] = self._dora(name, now)
        return out

    def _release(self, release: dict[str, Any] | None) -> dict[str, Any] | None:
        if not release:
            return None
        out = dict(release)
        artifact = release.get("artifact")
        if artifact:
            out["short"] = short(Digest(str(artifact)))
            facts = self._facts(str(artifact))
            out["version"] = facts.version
            out["tags"] = list(facts.tags)
        return out

    def _facts(self, artifact: str) -> ArtifactFacts:
        try:
            return self._artifact_facts(artifact)
        except KilnError:
            return ArtifactFacts()  # a missing manifest hides its version, not the page

    def _rollout(
        self, environment: str, rollout: dict[str, Any], spec: Environment | None
    ) -> dict[str, Any]:
        out = dict(rollout)
        out["candidate"] = self._release(rollout.get("candidate"))
        out["stable"] = self._release(rollout.get("stable"))
        names = [str(s) for s in rollout.get("steps") or []]
        out["steps"] = step_list(names, str(rollout.get("phase", "")), int(rollout.get("step", 0)))
        out["analysis"] = rollout.get("analysis") or {}
        state = self._desired.rollout(environment) if self._desired else None
        out["deadlines"] = deadlines(state, spec)
        out["strategy"] = (
            "fast track" if rollout.get("fastTrack") else strategy_name(spec) if spec else None
        )
        return out

    def _weights(self, table: RouteTable | None, env: dict[str, Any]) -> list[dict[str, Any]]:
        """Each release's share as the router serves it, with its role in the rollout."""
        if table is None:
            return []
        rollout = env.get("rollout") or {}
        candidate = (rollout.get("candidate") or {}).get("id")
        stable = (env.get("stable") or {}).get("id")
        previous = (rollout.get("stable") or {}).get("id")
        rules = {getattr(rule, "release", None) for rule in table.rules}
        out = []
        for release in table.releases:
            role = (
                "candidate"
                if release.name == candidate and rollout.get("phase") != "succeeded"
                else "stable"
                if release.name == stable
                else "previous"
                if release.name == previous
                else "baseline"  # the fresh baseline group (kiln.core.rollout.baseline)
                if fresh.stable_of(release.name) is not None
                else "other"
            )
            out.append(
                {
                    "release": release.name,
                    "weight": release.weight,
                    "role": role,
                    "backends": len(release.backends),
                    "preview": release.name in rules,
                }
            )
        return out

    def _dora(self, environment: str, now: datetime) -> dict[str, Any] | None:
        if self._events is None:
            return None
        try:
            report = dora(self._events, environment=environment, since=now - DORA_WINDOW, until=now)
        except KilnError as exc:
            return {"error": exc.message}
        return dora_json(report)

    def _ledger(self) -> dict[str, Any]:
        check = self._check_ledger()
        out: dict[str, Any] = {
            "verified": check.verified,
            "verifiedSize": check.size,
            "checked": check.checked,
            "detail": check.detail,
            "size": 0,
            "events": [],
        }
        if self._events is None:
            return out
        size = self._events.size()
        out["size"] = size
        start = max(0, size - self._recent)
        events = list(self._events.events(start, size))
        out["events"] = [
            {
                "seq": e.seq,
                "time": e.time.astimezone(UTC).isoformat(),
                "kind": str(e.kind),
                "actor": e.actor,
                "environment": e.environment,
                "release": e.release,
                "artifact": short(Digest(e.artifact)) if e.artifact else None,
            }
            for e in reversed(events)
        ]
        return out


def _listing(
    provider: Provider, listings: dict[int, list[Instance] | KilnError]
) -> list[Instance] | KilnError:
    key = id(provider)
    if key not in listings:
        try:
            listings[key] = provider.list()
        except KilnError as exc:
            listings[key] = exc
    return listings[key]


def step_list(names: list[str], phase: str, step: int) -> list[dict[str, str]]:
    """Each step with its state: ``done``, ``current``, ``stopped`` (where a rollback
    began), ``skipped`` (after it) or ``pending``."""
    out = []
    for index, name in enumerate(names):
        if phase == "succeeded" or index < step:
            state = "done"
        elif phase == "stepping" and index == step:
            state = "current"
        elif phase in {"rolling-back", "rolled-back"}:
            state = "stopped" if index == step else "skipped"
        else:
            state = "pending"
        out.append({"name": name, "state": state})
    return out


def deadlines(state: RolloutState | None, spec: Environment | None) -> dict[str, str | None]:
    """When the rollout (and its current step) will be rolled back if it has not
    moved on: the planner's ``progress_deadline`` and ``step_deadline`` rules."""
    if spec is None or state is None or state.phase.terminal:
        return {"progress": None, "step": None}
    limit = spec.rollback.step_deadline
    step = None
    if limit is not None and state.phase is Phase.STEPPING and state.step_started is not None:
        step = _iso(state.step_started + limit)
    return {"progress": _iso(state.started + spec.rollback.progress_deadline), "step": step}


def strategy_name(spec: Environment) -> str:
    return "blue/green" if spec.strategy.blue_green is not None else "canary"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def instances_json(
    listed: list[Instance], table: RouteTable | None, health: DataPlaneHealth | None
) -> list[dict[str, Any]]:
    """Each instance with one health word: ``serving`` (routed, the router sees it up),
    ``failing`` (routed, the router marked it down), ``not routed`` (running, in no
    route), or its provider state (``dead``, ``orphan``, ``impostor``)."""
    routed = {b.address for _, b in table.backends} if table else set()
    seen = {b.address: b for b in health.backends} if health else {}
    out = []
    for instance in sorted(listed, key=lambda i: (i.release, i.id.value)):
        address = instance.address if instance.port else None
        if instance.state is not State.RUNNING:
            word = instance.state.value
            failures = 0
        elif address in seen:
            backend = seen[address]
            word = "serving" if backend.up else "failing"
            failures = backend.consecutive_failures
        elif address in routed:
            word, failures = "serving", 0
        else:
            word, failures = "not routed", 0
        out.append(
            {
                "id": instance.id.value,
                "release": instance.release,
                "state": instance.state.value,
                "address": address,
                "created": instance.created,
                "health": word,
                "failures": failures,
            }
        )
    return out
