"""The controller: leadership, rollout workers, and the operations the API exposes.

One worker thread per environment this controller leads. It ticks that
environment's ``RolloutExecutor`` while a rollout is in progress, and resumes a
rollout that was in progress when a previous controller died (the state is in
``DesiredState``; the executor re-observes the world and converges).

Leadership is fenced: winning an environment's lock opens a new term in the
state store (``DesiredState.open_term``) and hands its epoch to the executor,
whose every write and outside action is checked against the current term. A
controller that finds its term is over (``StaleLeader``: it was paused, or lost
its lock without noticing, and a newer leader took over) stands down: it stops
driving the environment, logs it once, releases what is left of its lock and
keeps trying to win it back like any follower.

Every operation checks admission first: an artifact that is revoked, unsigned
(unless the environment says ``allowUnsigned``) or not trusted is refused here,
before anything is provisioned.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kiln import __version__
from kiln.core.digest import Digest
from kiln.core.release import ReleaseId
from kiln.core.rollout.planner import Decision, RolloutState
from kiln.core.spec.models import ServiceSpec
from kiln.errors import KilnError, NotFound, Refused, StaleLeader, Temporary
from kiln.ports.clock import Clock
from kiln.ports.leader import LeaderLock
from kiln.ports.state import DesiredState, Signal
from kiln.services.reconcile import Reconciler
from kiln.services.rollout import POLL, RolloutExecutor

log = logging.getLogger(__name__)

HEAL_INTERVAL = 2.0  # seconds between drift scans of an environment with no rollout

Admit = Callable[[Digest, str, str], None]
"""(artifact, environment, actor) -> None, or raise ``Refused`` naming every reason."""

Resolve = Callable[[str], Digest]
"""A digest or a tag -> the artifact digest; ``NotFound`` when unknown."""


@dataclass
class _Worker:
    thread: threading.Thread
    wake: threading.Event = field(default_factory=threading.Event)
    last: Decision | None = None
    error: str = ""
    scanned: float = 0.0  # monotonic time of the last drift scan


@dataclass
class Controller:
    spec: ServiceSpec | None
    leader: LeaderLock
    clock: Clock
    address: str
    desired: DesiredState | None = None
    executors: Mapping[str, RolloutExecutor] = field(default_factory=dict)
    admit: Admit | None = None
    resolve: Resolve | None = None
    urls: Mapping[str, str] = field(default_factory=dict)
    preview_urls: Mapping[str, str] = field(default_factory=dict)  # blue/green previewPort
    reconcilers: Mapping[str, Reconciler] = field(default_factory=dict)
    heal_interval: float = HEAL_INTERVAL
    started: datetime = field(init=False)
    _workers: dict[str, _Worker] = field(init=False, default_factory=dict)
    _terms: dict[str, int] = field(init=False, default_factory=dict)  # opened, by environment
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.started = self.clock.now()

    # --- leadership and workers ----------------------------------------------------------

    def claim_environments(self) -> list[str]:
        """Try to lead every environment of the spec; start a worker for each we lead."""
        if self.spec is None:
            return []
        led: list[str] = []
        held = self.leader.held()
        for env in self.spec.environments:
            try:
                above = 0 if env.name in held else self._last_term(env.name)
                if self.leader.try_acquire(env.name, above=above) and self._open_term(env.name):
                    led.append(env.name)
            except Temporary as exc:  # a shared database away for a moment: claim again later
                log.warning("%s: cannot claim it now: %s", env.name, exc.message)
        for name in led:
            if name in self.executors:
                self._ensure_worker(name)
        return led

    def _last_term(self, environment: str) -> int:
        """The newest term seen: the store's, or the router's table's if newer."""
        term = self.desired.term(environment) if self.desired is not None else 0
        executor = self.executors.get(environment)
        return max(term, executor.served_term()) if executor is not None else term

    def _open_term(self, environment: str) -> bool:
        """Open the term of the lock we hold (once per acquisition) and give its epoch to
        the executor. False, with the lock released, if a newer term already exists."""
        epoch = self.leader.epoch(environment)
        if epoch is None or self.desired is None or self._terms.get(environment) == epoch:
            return True
        try:
            self.desired.open_term(environment, epoch)
        except StaleLeader as exc:
            log.warning("%s: not leading: %s", environment, exc.message)
            self.leader.release(environment)
            return False
        self._terms[environment] = epoch
        log.info("%s: leading in term %d", environment, epoch)
        executor = self.executors.get(environment)
        if executor is not None:
            executor.lead(environment, epoch)
        return True

    def _stand_down(self, environment: str, worker: _Worker, exc: StaleLeader) -> None:
        """Our term is over: stop driving ``environment`` and let the claim loop try again.

        The executor keeps its stale epoch, so anything still reaching it (an API
        call in flight) is refused rather than applied unfenced."""
        worker.error = f"stood down: {exc.message}"
        log.warning("%s: standing down, a newer leader drives it: %s", environment, exc.message)
        stale = self._terms.pop(environment, None)
        if stale is not None and self.leader.epoch(environment) == stale:
            self.leader.release(environment)

    def _ensure_worker(self, environment: str) -> _Worker:
        with self._lock:
            worker = self._workers.get(environment)
            if worker is None or not worker.thread.is_alive():
                thread = threading.Thread(
                    target=self._work,
                    args=(environment,),
                    name=f"rollout-{environment}",
                    daemon=True,
                )
                worker = _Worker(thread)
                self._workers[environment] = worker
                thread.start()
            return worker

    def _work(self, environment: str) -> None:
        executor = self.executors[environment]
        worker = self._workers[environment]
        while not self._stop.is_set():
            if environment not in self.leader.held():
                # Leadership lost (a PostgreSQL session ended): another controller
                # drives this environment now; claim_environments restarts us if
                # we win it back.
                worker.error = "not the leader any more"
                log.warning("%s: not the leader any more: its lock was lost", environment)
                return
            try:
                self._work_once(environment, executor, worker)
            except StaleLeader as exc:
                self._stand_down(environment, worker, exc)
                return
            except Temporary as exc:  # the term check's read failed: retry, do not act
                worker.error = exc.message
                self._stop.wait(exc.delay)

    def _work_once(self, environment: str, executor: RolloutExecutor, worker: _Worker) -> None:
        executor.check_term(environment)  # a paused leader stands down before it acts
        state = self.desired.rollout(environment) if self.desired else None
        if state is None or state.phase.terminal:
            self._heal_tick(environment, worker)
            worker.wake.wait(min(1.0, self.heal_interval))
            worker.wake.clear()
            return
        try:
            worker.last = executor.tick(environment)
            worker.error = ""
        except StaleLeader:
            raise
        except KilnError as exc:
            worker.error = exc.message  # shown by `kiln status`; retried next tick
            self._stop.wait(1.0)
        if worker.last is None or worker.last.state == state:
            self._stop.wait(POLL)  # nothing moved; a step that moved is followed at once

    def _heal_tick(self, environment: str, worker: _Worker) -> None:
        """Every ``heal_interval``: scan for drift, record it, heal (where selfHeal)."""
        reconciler = self.reconcilers.get(environment)
        now = self.clock.monotonic()
        if reconciler is None or now - worker.scanned < self.heal_interval:
            return
        worker.scanned = now
        try:
            reconciler.reconcile(environment)
            worker.error = ""
        except StaleLeader:
            raise
        except KilnError as exc:
            worker.error = exc.message  # shown by `kiln status`; retried next interval

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers.values():
            worker.wake.set()
            worker.thread.join(timeout=5)

    # --- operations ----------------------------------------------------------------------

    def deploy(self, environment: str, reference: str, *, actor: str) -> dict[str, Any]:
        executor = self._executor(environment)
        if self.resolve is None or self.admit is None:
            raise Refused("this controller cannot deploy: it has no artifact store")
        digest = self.resolve(reference)
        self.admit(digest, environment, actor)
        state = executor.start(environment, digest, actor=actor)
        self._ensure_worker(environment).wake.set()
        return self._rollout_json(state)

    def promote(self, environment: str, *, actor: str) -> dict[str, Any]:
        self._executor(environment).signal(environment, Signal.PROMOTE, actor=actor)
        self._ensure_worker(environment).wake.set()
        return {"environment": environment, "signal": "promote"}

    def abort(self, environment: str, *, actor: str) -> dict[str, Any]:
        self._executor(environment).signal(environment, Signal.ABORT, actor=actor)
        self._ensure_worker(environment).wake.set()
        return {"environment": environment, "signal": "abort"}

    def rollback(self, environment: str, *, to: str | None, actor: str) -> dict[str, Any]:
        executor = self._executor(environment)
        digest = self.resolve(to) if (to and self.resolve) else None
        state = executor.rollback(environment, to=digest, actor=actor)
        self._ensure_worker(environment).wake.set()
        return self._rollout_json(state)

    def drift(self, environment: str | None) -> dict[str, Any]:
        """Findings (and the actions that would heal them) per environment; records them."""
        names = self._drift_targets(environment)
        reports = [self.reconcilers[n].reconcile(n, dry_run=True) for n in names]
        return {"clean": all(r["clean"] for r in reports), "environments": reports}

    def reconcile(self, environment: str | None, *, dry_run: bool, actor: str) -> dict[str, Any]:
        names = self._drift_targets(environment)
        reports = [self.reconcilers[n].reconcile(n, dry_run=dry_run) for n in names]
        return {
            "clean": all(r["clean"] for r in reports),
            "actor": actor,
            "environments": reports,
        }

    def _drift_targets(self, environment: str | None) -> list[str]:
        if environment is not None:
            self._executor(environment)  # unknown or not led: refused with the same words
            if environment not in self.reconcilers:
                raise Refused(f"this controller does not reconcile {environment}")
            return [environment]
        held = self.leader.held()
        return [n for n in self.reconcilers if n in held]

    def _executor(self, environment: str) -> RolloutExecutor:
        if self.spec is None:
            raise Refused("this controller has no kiln.yaml", hint="run `kiln serve` beside it")
        executor = self.executors.get(environment)
        if executor is None:
            known = ", ".join(e.name for e in self.spec.environments)
            raise NotFound(f"no environment {environment!r}", hint=f"known: {known}")
        if environment not in self.leader.held():
            raise Refused(
                f"another controller leads {environment}",
                hint="send the request to the leader (see `kiln controller status`)",
            )
        return executor

    # --- status --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        envs = [e.name for e in self.spec.environments] if self.spec else []
        held = self.leader.held()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "address": self.address,
            "started": self.started.isoformat(),
            "service": self.spec.service if self.spec else None,
            "environments": [self.environment_status(name, leader=name in held) for name in envs],
        }

    def environment_status(self, name: str, *, leader: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "leader": leader, "url": self.urls.get(name)}
        if leader and name in self._terms:
            out["term"] = self._terms[name]  # the fencing epoch this controller leads in
        if self.desired is None:
            return out
        declared = self.desired.environment(name)
        out["stable"] = self._release_json(declared.stable)
        executor = self.executors.get(name)
        # Through the executor: a phase shown is a phase whose ledger events exist.
        state = executor.rollout(name) if executor is not None else self.desired.rollout(name)
        out["rollout"] = self._rollout_json(state) if state else None
        previewing = state is not None and state.preview and not state.phase.terminal
        out["previewUrl"] = self.preview_urls.get(name) if previewing else None
        worker = self._workers.get(name)
        if executor is not None and state is not None:
            out["rollout"]["steps"] = executor.steps(name, fast_track=state.fast_track)
            out["rollout"]["analysis"] = executor.analysis_figures(name)
            # Counting instances lists the provider: only worth it for a fresh group.
            out["rollout"]["baseline"] = executor.baseline_info(
                name, state, count=state.baseline is not None and not state.phase.terminal
            )
        if worker is not None:
            out["note"] = worker.last.note if worker.last else ""
            out["error"] = worker.error
        return out

    def _release_json(self, release_id: str | None) -> dict[str, Any] | None:
        if not release_id or self.desired is None:
            return None
        release = self.desired.release(ReleaseId(release_id))
        if release is None:
            return {"id": release_id}
        return {"id": release.id, "artifact": release.artifact, "config": release.config}

    def _rollout_json(self, state: RolloutState) -> dict[str, Any]:
        return {
            "environment": state.environment,
            "deployment": state.deployment,
            "phase": str(state.phase),
            "step": state.step,
            "weight": state.weight,
            "preview": state.preview,
            "candidate": self._release_json(state.candidate),
            "stable": self._release_json(state.stable),
            "replacements": state.replacements,
            "reason": state.reason,
            "fastTrack": state.fast_track,
            "started": state.started,
        }
