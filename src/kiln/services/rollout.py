"""The rollout executor: observe, decide (pure), persist, then act.

One ``tick`` is one cycle for one environment:

1. observe: instances of the candidate and the stable release (provider list +
   readiness probes), the split the router serves, operator signals, and the
   current analysis step's outcome;
2. decide: ``kiln.core.rollout.planner.decide`` (pure);
3. persist the new state in ``DesiredState`` *before* acting, and record the
   transition in the ledger: with an outbox (``kiln.services.outbox``, what the
   controller wires) the state and its events are saved in one transaction and
   then appended, so a crash between the two loses no event;
4. apply the actions, each idempotent.

So a controller killed anywhere resumes from the persisted state: the next tick
observes the world as it really is and converges (docs/rollouts.md).

A canary with ``baseline: fresh`` also runs a baseline group: instances of the
stable release launched under the name ``<stable>+baseline``
(``kiln.core.rollout.baseline``), which is all that tells them apart from the
stable ones (their label, their route-table entry, their router metrics). The
executor starts it with the canary (one provider ``create`` for each group, then
one wait for both) and judges the canary against it.

Fencing: while the controller leads an environment it gives this executor the
term's epoch (``lead``). Every state write then carries it (the store refuses a
stale one), each tick and each outside action (creating or destroying an
instance, pushing a route table) first checks the term is still current, and
route tables carry the epoch in their generation's high bits, so a table a
stale leader pushes loses against any table of a newer term
(``kiln.core.traffic.table.next_generation``). A stale term raises
``StaleLeader``; the controller stands down.

Traffic only ever reaches instances whose readiness probe passed: route tables are
built from ready instances, and an instance that fails its probes
``failureThreshold`` times in a row is reported to the planner as failed, which
replaces it (or rolls back once ``maxReplacements`` is spent).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from kiln.core.canonical import canonical_json
from kiln.core.digest import Digest, digest_bytes
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind
from kiln.core.release import Release, ReleaseId, resolved_config
from kiln.core.rollout import baseline as fresh
from kiln.core.rollout import planner
from kiln.core.rollout.planner import (
    FAST_TRACK,
    ApplyRoute,
    Decision,
    Decommission,
    EnsureInstances,
    MarkStable,
    Observed,
    Phase,
    ReplaceInstance,
    RolloutState,
    StartAnalysis,
    Wait,
)
from kiln.core.rollout.steps import Analyze, describe, steps_for
from kiln.core.runtime.model import (
    ENVIRONMENT,
    RELEASE,
    SERVICE,
    Healthy,
    Instance,
    InstanceId,
    LaunchSpec,
    State,
)
from kiln.core.spec.models import (
    BaselineKind,
    Environment,
    Judge,
    MetricSourceKind,
    ServiceSpec,
)
from kiln.core.traffic.table import (
    TERM_SHIFT,
    Backend,
    HeaderMatch,
    Listener,
    RouteTable,
    Sticky,
    next_generation,
)
from kiln.core.traffic.table import Release as RouteRelease
from kiln.errors import KilnError, NotFound, Refused, StaleLeader
from kiln.ports.clock import Clock
from kiln.ports.ledger import Recorder, record_draft
from kiln.ports.metrics import MetricSource
from kiln.ports.runtime import Provider
from kiln.ports.state import AnalysisJournal, DesiredState, Signal
from kiln.ports.traffic import Router
from kiln.services.analysis import AnalysisSession, RouterSource
from kiln.services.outbox import EventOutbox

Launcher = Callable[[Release], LaunchSpec]
"""Turns a release into what a provider starts (the artifact unpacked, config resolved)."""

POLL = 0.05  # seconds between ticks while something is changing; readiness is not tick-bound
DRAIN_TIMEOUT = 10.0
PREVIEW_VALUE = "1"  # `curl -H 'x-kiln-preview: 1'` reaches the preview release

AFTER_STATE_SAVE = "after-state-save"
"""The crash point between a transition's state save and its ledger append (test-only:
``KILN_FAULT``, ``kiln.bootstrap.faults``)."""


@dataclass(frozen=True)
class CommitInfo:
    commit: str | None = None
    commit_time: str | None = None  # RFC 3339


@dataclass
class _Tracked:
    """What the executor remembers between ticks (rebuilt harmlessly after a restart)."""

    failures: dict[str, int] = field(default_factory=dict)  # instance -> consecutive failed probes
    failed: set[str] = field(default_factory=set)  # reported to the planner, not yet replaced
    session: AnalysisSession | None = None
    # The last analysis outcome observed, with its (deployment, step): what the ledger's
    # analysis.verdict says once the rollout moves past that step.
    outcome: tuple[str, int, planner.AnalysisOutcome] | None = None
    since: float = 0.0  # wall time this process began tracking the environment


class RolloutExecutor:
    def __init__(
        self,
        *,
        spec: ServiceSpec,
        desired: DesiredState,
        provider: Provider,
        router: Router,
        recorder: Recorder,
        clock: Clock,
        launcher: Launcher,
        actor: str,
        sources: Mapping[MetricSourceKind, MetricSource] | None = None,
        commit_info: Callable[[Digest], CommitInfo] | None = None,
        journal: AnalysisJournal | None = None,
        outbox: EventOutbox | None = None,
        crash_point: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        # Where a transition's events wait for the ledger, saved with the state; without
        # one (unit tests, one-shot tools) they are recorded straight after the save,
        # and a crash in between loses them.
        self._outbox = outbox
        # Test-only fault injection (``KILN_FAULT``): called with AFTER_STATE_SAVE.
        self._crash_point = crash_point or (lambda _point: None)
        self._desired = desired
        # Where analysis rounds are kept across a controller restart; without
        # one, an interrupted analysis step restarts its window instead.
        self._journal = journal
        self._provider = provider
        self._router = router
        self._recorder = recorder
        self._clock = clock
        self._launcher = launcher
        self._actor = actor
        self._sources: dict[MetricSourceKind, MetricSource] = {
            MetricSourceKind.ROUTER: RouterSource(router, clock),
            **(sources or {}),
        }
        self._commit_info = commit_info or (lambda _digest: CommitInfo())
        self._tracked: dict[str, _Tracked] = {}
        # The epoch of the term this controller leads each environment in; an
        # environment without one is driven unfenced (tests, one-shot tools).
        self._terms: dict[str, int] = {}
        # Held from saving a transition until its ledger events are recorded: a reader
        # of ``rollout`` (the controller's API, so `kiln deploy` and the pipeline
        # following a rollout, then the next environment's promotion gate reading
        # the ledger) must never see a saved `succeeded` before its deploy.complete.
        self._committing = threading.Lock()
        # One provider listing per tick and environment (a listing scans /proc);
        # dropped whenever this executor creates or destroys an instance.
        self._listing: dict[str, dict[str, list[Instance]]] | None = None

    # --- fencing -------------------------------------------------------------------------

    def lead(self, environment: str, epoch: int | None) -> None:
        """Drive ``environment`` in term ``epoch`` from now on (None: stop fencing it).
        A new term forgets what the last one tracked: its analysis session is
        rebuilt from the journal, as after a restart."""
        if epoch is None:
            self._terms.pop(environment, None)
            return
        if self._terms.get(environment) != epoch:
            self._tracked.pop(environment, None)
        self._terms[environment] = epoch

    def epoch(self, environment: str) -> int | None:
        return self._terms.get(environment)

    def served_term(self) -> int:
        """The term of the route table the router serves (0: none, or unreachable). A
        new term must start above it, or this executor would find itself stale at
        its first push (a state directory whose ``state.db`` was lost, say)."""
        try:
            current = self._router.current()
        except KilnError:
            return 0
        return current.generation >> TERM_SHIFT if current is not None else 0

    def check_term(self, environment: str) -> None:
        """``StaleLeader`` if a newer term than ours exists (a cheap read; the writes
        themselves are checked in their own transactions)."""
        mine = self._terms.get(environment)
        if mine is None:
            return
        current = self._desired.term(environment)
        if current != mine:
            raise StaleLeader.term_over(environment, mine, current)

    # --- starting ------------------------------------------------------------------------

    def start(
        self, environment: str, artifact: Digest, *, actor: str | None = None
    ) -> RolloutState:
        """Begin moving ``environment`` to ``artifact``: a new release, a persisted rollout."""
        env = self._environment(environment)
        self.check_term(environment)
        self.flush_outbox()
        current = self._desired.rollout(environment)
        if current is not None and not current.phase.terminal:
            raise Refused(
                f"{environment} already has a rollout in progress ({current.phase}, "
                f"release {current.candidate})",
                hint=f"wait for it, or run `kiln abort {environment}`",
            )
        document = resolved_config(env)
        release = Release.of(environment, artifact, digest_bytes(canonical_json(document)))
        stable = self._desired.environment(environment).stable
        if stable == release.id:
            raise Refused(
                f"{environment} already runs {release.label}",
                hint="deploy a different artifact, or change the environment's config",
            )
        epoch = self._terms.get(environment)
        self._desired.put_release(release, document, epoch=epoch)
        now = self._wall()
        deployment = f"dep-{secrets.token_hex(6)}"
        canary = env.strategy.canary
        baseline = (
            fresh.name_for(stable)
            if stable is not None and canary is not None and canary.baseline is BaselineKind.FRESH
            else None
        )
        state = replace(
            RolloutState.begin(environment, release.id, stable, now),
            deployment=deployment,
            baseline=baseline,
        )
        info = self._commit_info(artifact)
        details: dict[str, Any] = {
            "deployment": deployment,
            "strategy": "canary" if env.strategy.canary is not None else "bluegreen",
        }
        if baseline is not None:
            details["baseline"] = baseline
        if info.commit:
            details["commit"] = info.commit
        if info.commit_time:
            details["commit_time"] = info.commit_time
        links: dict[str, str] = {"config": release.config}
        if stable:
            links["previous_release"] = stable
        events = _Drafts()
        events.record(
            EventKind.DEPLOY_START,
            actor=actor or self._actor,
            artifact=artifact,
            environment=environment,
            release=release.id,
            links=links,
            details=details,
        )
        self._commit(state, events.drafts, epoch=epoch)
        return state

    def rollback(
        self, environment: str, *, to: Digest | None = None, actor: str | None = None
    ) -> RolloutState:
        """The fast track back to a known good release, at any time, with no analysis.

        During a rollout this is an abort: one route change to the warm stable
        release. Otherwise it starts a fast-track rollout to ``to`` (an artifact this
        environment ran before) or to the release that was stable before the current
        one; traffic moves only once its instances are ready, and fresh ones are
        provisioned if the old ones are gone.
        """
        self._environment(environment)
        self.check_term(environment)
        self.flush_outbox()
        current = self._desired.rollout(environment)
        if current is not None and not current.phase.terminal:
            self.signal(environment, Signal.ABORT, actor=actor)
            return current
        stable = self._desired.environment(environment).stable
        history = self._desired.stable_history(environment)
        target: ReleaseId | None = None
        if to is not None:
            for release_id in reversed(history):
                release = self._desired.release(release_id)
                if release is not None and release.artifact == to and release_id != stable:
                    target = release_id
                    break
            if target is None:
                raise NotFound(
                    f"{environment} never ran artifact {to} as a stable release",
                    hint=f"`kiln history {environment}` lists what it ran",
                )
        else:
            earlier = [r for r in history if r != stable]
            if not earlier:
                raise Refused(
                    f"{environment} has no earlier release to roll back to",
                    hint="deploy a fixed artifact instead",
                )
            target = earlier[-1]
        state = replace(
            RolloutState.begin(environment, target, stable, self._wall()),
            deployment=f"rbk-{secrets.token_hex(6)}",
            fast_track=True,
        )
        events = _Drafts()
        events.record(
            EventKind.ROLLOUT_STEP,
            actor=actor or self._actor,
            environment=environment,
            release=target,
            details={"deployment": state.deployment, "signal": "rollback", "from": stable},
        )
        self._commit(state, events.drafts, epoch=self._terms.get(environment))
        return state

    def signal(self, environment: str, signal: Signal, *, actor: str | None = None) -> None:
        self.check_term(environment)
        self.flush_outbox()
        state = self._desired.rollout(environment)
        if state is None or state.phase.terminal:
            raise Refused(
                f"{environment} has no rollout in progress to {signal}",
                hint=f"`kiln status {environment}` shows what it runs",
            )
        self._desired.signal(environment, signal, epoch=self._terms.get(environment))
        self._recorder.record(
            EventKind.ROLLOUT_STEP,
            actor=actor or self._actor,
            environment=environment,
            release=state.candidate,
            details={"deployment": state.deployment, "signal": str(signal), "step": state.step},
        )

    def rollout(self, environment: str) -> RolloutState | None:
        """The saved rollout, once the ledger holds the events of its last transition
        (a crash's leftovers in the outbox are appended first)."""
        with self._committing:
            if self._outbox is not None:
                self._outbox.flush()
            return self._desired.rollout(environment)

    def flush_outbox(self) -> int:
        """Append what a crash left in the outbox to the ledger (in order, each event
        once); the number of events. Cheap when it is empty: one read."""
        if self._outbox is None:
            return 0
        with self._committing:
            return self._outbox.flush()

    def settle(self, environment: str) -> None:
        """Finish what a crash cut short after a rollout's last transition was saved:
        the release it ended on becomes the stable one (``MarkStable``, the one final
        action nothing else would redo; the reconciler then heals routes and
        instances toward it). A no-op, one read, when it already is."""
        state = self._desired.rollout(environment)
        if state is None or not state.phase.terminal:
            return
        outcome = state.candidate if state.phase is Phase.SUCCEEDED else state.stable
        if outcome is None or self._desired.environment(environment).stable == outcome:
            return
        self.check_term(environment)
        self._desired.set_stable(
            environment, ReleaseId(outcome), epoch=self._terms.get(environment)
        )

    def _commit(self, state: RolloutState, drafts: list[EventDraft], *, epoch: int | None) -> None:
        """Save ``state`` (refused if our term is over) and record its events. Readers
        of ``rollout`` see both or neither; with the outbox a crash between the two
        loses nothing (the next flush appends them)."""
        with self._committing:
            if self._outbox is not None:
                self._outbox.save(state, drafts, epoch=epoch)
                self._crash_point(AFTER_STATE_SAVE)
                self._outbox.flush()
                return
            self._desired.save_rollout(state, epoch=epoch)
            self._crash_point(AFTER_STATE_SAVE)
            for draft in drafts:
                record_draft(self._recorder, draft)

    # --- the loop ------------------------------------------------------------------------

    def run(
        self,
        environment: str,
        *,
        on_decision: Callable[[Decision], None] | None = None,
        timeout: float | None = None,
    ) -> RolloutState:
        """Tick until the rollout ends (or ``timeout`` seconds pass); return the last state."""
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        before = self._desired.rollout(environment)
        while True:
            decision = self.tick(environment)
            if on_decision is not None:
                on_decision(decision)
            if decision.state.phase.terminal:
                return decision.state
            if deadline is not None and self._clock.monotonic() >= deadline:
                return decision.state
            if decision.state == before:
                time.sleep(POLL)  # nothing moved: wait; a step that moved is followed at once
            before = decision.state

    def tick(self, environment: str) -> Decision:
        env = self._environment(environment)
        state = self._desired.rollout(environment)
        if state is None:
            raise NotFound(f"{environment} has no rollout", hint=f"run `kiln deploy {environment}`")
        self.check_term(environment)
        self.flush_outbox()  # a crash's leftovers go first, before any new event
        if state.phase.terminal:
            self.settle(environment)
        tracked = self._track(environment)
        self._listing = {}
        try:
            state = self._resume_analysis(env, state, tracked)
            seen = self._observe(env, state, tracked)
            decision = planner.decide(env, state, seen)
            if decision.state != state:
                events = _Drafts()
                self._record_transition(env, state, decision, events)
                # Before acting, crash-safe; refused if our term is over.
                self._commit(decision.state, events.drafts, epoch=self._terms.get(environment))
            self._apply(env, decision, tracked)
        finally:
            self._listing = None
        return decision

    def _resume_analysis(
        self, env: Environment, state: RolloutState, tracked: _Tracked
    ) -> RolloutState:
        """An analysis step that began under a controller that died: resume its judges
        from the journal, with the window's original deadline; the last round is the
        cursor, so the traffic the router counted meanwhile is evidence too. With no
        round journaled (no journal, or a crash before the first poll) there is no
        evidence and no cursor, so the window restarts instead (fail closed: lost
        evidence is re-collected, never assumed)."""
        if (
            state.phase is not Phase.STEPPING
            or state.step_started is None
            or state.step_started >= tracked.since
            or (
                tracked.session is not None
                and tracked.session.belongs_to(state.deployment, state.step)
            )
        ):
            return state
        chosen = FAST_TRACK if state.fast_track else steps_for(env)
        if state.step >= len(chosen):
            return state
        step = chosen[state.step]
        if not isinstance(step, Analyze):
            return state
        rounds = (
            self._journal.rounds(env.name, state.deployment, state.step) if self._journal else []
        )
        if rounds:
            tracked.session = self._session(
                env, state, state.step, step.metrics, step.duration, rounds
            )
            self._record_resume(
                env,
                state,
                f"resumed after a controller restart: analysis continues with {len(rounds)} "
                "rounds of evidence, same deadline",
            )
            return state
        resumed = replace(state, step_started=self._wall())
        events = _Drafts()
        self._record_resume(
            env, state, "resumed after a controller restart: analysis window restarted", events
        )
        self._commit(resumed, events.drafts, epoch=self._terms.get(env.name))
        return resumed

    def _record_resume(
        self, env: Environment, state: RolloutState, note: str, recorder: Recorder | None = None
    ) -> None:
        (recorder or self._recorder).record(
            EventKind.ROLLOUT_STEP,
            actor=self._actor,
            environment=env.name,
            release=state.candidate,
            details={"deployment": state.deployment, "step": state.step, "note": note},
        )

    # --- observing -----------------------------------------------------------------------

    def _observe(self, env: Environment, state: RolloutState, tracked: _Tracked) -> Observed:
        mine = self._instances(env.name)
        candidate = self._probe(env, mine.get(state.candidate, []), tracked)
        stable = self._probe(env, mine.get(state.stable, []), tracked) if state.stable else []
        group = mine.get(state.baseline, []) if state.baseline else []
        baseline = self._probe(env, group, tracked)
        group_ids = {i.id.value for i in group}
        table = self._router_table()
        weight: int | None = None
        preview = False
        route_baseline = 0
        if table is not None:
            entry = table.release(state.candidate)
            weight = entry.weight if entry is not None else 0
            served = table.release(state.baseline) if state.baseline else None
            route_baseline = served.weight if served is not None else 0
            if state.stable is None and entry is not None and entry.backends:
                weight = state.weight  # first release: it takes all traffic whatever the plan
            preview = any(
                isinstance(r, HeaderMatch) and r.release == state.candidate for r in table.rules
            )
        signals = self._desired.take_signals(env.name, epoch=self._terms.get(env.name))
        now = self._wall()
        analysis = self._analysis_outcome(env, state, tracked, now)
        tracked.outcome = (state.deployment, state.step, analysis)
        failed = tuple(sorted(tracked.failed - group_ids))
        return Observed(
            now=now,
            candidate_ready=len(candidate),
            stable_ready=len(stable),
            failed_instances=failed,
            route_weight=weight if table is not None else None,
            route_preview=preview,
            analysis=analysis,
            promote_requested=Signal.PROMOTE in signals,
            abort_requested=Signal.ABORT in signals,
            baseline_ready=len(baseline),
            baseline_present=len(group),
            baseline_failed=tuple(sorted(tracked.failed & group_ids)),
            route_baseline=route_baseline,
        )

    def _instances(self, environment: str) -> dict[str, list[Instance]]:
        if self._listing is not None and environment in self._listing:
            return self._listing[environment]
        selector = {SERVICE: self.spec.service, ENVIRONMENT: environment}
        grouped: dict[str, list[Instance]] = {}
        for instance in self._provider.list(selector):
            if instance.state is State.ORPHAN:
                continue  # never routed to; the reconciler reaps it
            grouped.setdefault(instance.labels.get(RELEASE, ""), []).append(instance)
        if self._listing is not None:
            self._listing[environment] = grouped
        return grouped

    def _probe(
        self, env: Environment, instances: list[Instance], tracked: _Tracked
    ) -> list[Instance]:
        """The ready ones; record consecutive failures; report dead or failing ones."""
        ready: list[Instance] = []
        for instance in instances:
            key = instance.id.value
            if instance.state is State.DEAD:
                tracked.failed.add(key)
                continue
            result = self._provider.health(instance.id, timeout=env.health.timeout)
            if isinstance(result, Healthy):
                tracked.failures.pop(key, None)
                ready.append(instance)
                continue
            count = tracked.failures.get(key, 0) + 1
            tracked.failures[key] = count
            if count >= env.health.failure_threshold:
                tracked.failed.add(key)
        return ready

    def _router_table(self) -> RouteTable | None:
        return self._router.current()

    def _analysis_outcome(
        self, env: Environment, state: RolloutState, tracked: _Tracked, now: float
    ) -> planner.AnalysisOutcome:
        session = tracked.session
        if (
            session is None
            or not session.belongs_to(state.deployment, state.step)
            or state.phase is not Phase.STEPPING
        ):
            return planner.Pending()
        if not session.metrics and state.stable is None:
            # Comparative and sequential judges need a baseline; a first release has none.
            return planner.Passed("skipped: a first release has no baseline to compare with")
        journal = self._journal
        if journal is None:
            return session.poll(self._sources, now=now)

        epoch = self._terms.get(env.name)

        def record(seq: int, body: dict[str, Any]) -> None:
            journal.append_round(env.name, state.deployment, state.step, seq, body, epoch=epoch)

        return session.poll(self._sources, now=now, record=record)

    # --- acting --------------------------------------------------------------------------

    def _apply(self, env: Environment, decision: Decision, tracked: _Tracked) -> None:
        state = decision.state
        ensured = False
        for action in decision.actions:
            match action:
                case EnsureInstances():
                    if not ensured:  # every group of the decision at once (canary + baseline)
                        wanted = [a for a in decision.actions if isinstance(a, EnsureInstances)]
                        self._ensure_all(env, wanted, tracked)
                        ensured = True
                case ReplaceInstance(release, instance):
                    self._replace(env, ReleaseId(release), instance, tracked)
                case ApplyRoute():
                    self._route(env, state, action)
                case StartAnalysis(step, metrics, duration):
                    self._start_analysis(env, state, step, metrics, duration, tracked)
                case Decommission(release):
                    self._decommission(env, state, ReleaseId(release))
                case MarkStable(release):
                    self._desired.set_stable(
                        env.name, ReleaseId(release), epoch=self._terms.get(env.name)
                    )
                case Wait():
                    pass

    def _ensure(
        self, env: Environment, release_id: ReleaseId, count: int, tracked: _Tracked
    ) -> None:
        self._ensure_all(env, [EnsureInstances(release_id, count)], tracked)

    def _ensure_all(
        self, env: Environment, wanted: list[EnsureInstances], tracked: _Tracked
    ) -> None:
        missing: list[tuple[ReleaseId, int]] = []
        for action in wanted:
            running = [
                i
                for i in self._instances(env.name).get(action.release, [])
                if i.state is State.RUNNING and i.id.value not in tracked.failed
            ]
            if action.count > len(running):
                missing.append((ReleaseId(action.release), action.count - len(running)))
        if missing:
            self._provision_all(env, missing, tracked)

    def provision(self, environment: str, release_id: ReleaseId, count: int) -> list[str]:
        """Start ``count`` fresh instances of ``release_id`` and wait for them; the
        ids of those that became ready (the reconciler replaces through this)."""
        env = self._environment(environment)
        tracked = self._tracked.setdefault(environment, _Tracked())
        return self._provision(env, release_id, count, tracked)

    def route_release(
        self,
        environment: str,
        release_id: ReleaseId,
        *,
        exclude: frozenset[str] = frozenset(),
        force: bool = False,
    ) -> RouteTable | None:
        """Serve ``release_id`` alone, at weight 100, on its ready instances (minus
        ``exclude``); the steady state after a rollout. None when nothing changed.
        ``force`` re-applies an unchanged split under a new generation (the data
        plane was changed behind the router's back)."""
        env = self._environment(environment)
        ready = self._ready_backends(env, [release_id], exclude=exclude).get(release_id, ())
        if not ready:
            return None  # nothing ready to send traffic to: keep serving the current table
        current = self._router.current()
        generation = next_generation(current, self._terms.get(env.name))
        table = RouteTable(
            generation, env.name, (RouteRelease(release_id, 100, ready),), sticky=_sticky(env)
        )
        if current is not None and _same_split(current, table) and not force:
            return None
        self.check_term(env.name)
        self._router.apply(table)
        return table

    def _provision(
        self, env: Environment, release_id: ReleaseId, missing: int, tracked: _Tracked
    ) -> list[str]:
        return self._provision_all(env, [(release_id, missing)], tracked)

    def _launch(self, name: ReleaseId) -> LaunchSpec:
        """What to start for the group ``name``: a release, or a fresh baseline group
        (the stable release's launch spec under the group's name)."""
        stable = fresh.stable_of(name)
        release = self._desired.release(ReleaseId(stable) if stable else name)
        if release is None:
            raise NotFound(f"release {stable or name} is not known to this controller")
        spec = self._launcher(release)
        return replace(spec, release=name) if stable else spec

    def _provision_all(
        self, env: Environment, missing: list[tuple[ReleaseId, int]], tracked: _Tracked
    ) -> list[str]:
        """Create every group's missing instances first, then wait for all of them:
        a canary and its fresh baseline start together."""
        launches = [(name, self._launch(name), count) for name, count in missing]
        self._forget_listing(env.name)
        created: dict[str, ReleaseId] = {}
        self.check_term(env.name)
        for name, spec, count in launches:
            created.update((i.id.value, name) for i in self._provider.create(spec, count))
        ids = [InstanceId(value) for value in created]
        results = self._provider.wait_ready(
            ids, timeout=env.health.start_timeout, interval=env.health.interval
        )
        for instance_id, result in results.items():
            if not isinstance(result, Healthy):
                tracked.failed.add(instance_id.value)
                self._recorder.record(
                    EventKind.HEALTH_FAILURE,
                    actor=self._actor,
                    environment=env.name,
                    release=created[instance_id.value],
                    details={
                        "deployment": self._deployment(env.name),
                        "detected_at": _rfc3339(self._wall()),
                        "instance": instance_id.value,
                        "reason": getattr(result, "reason", "not ready"),
                    },
                )
        return [i.value for i, r in results.items() if isinstance(r, Healthy)]

    def _replace(
        self, env: Environment, release_id: ReleaseId, instance: str, tracked: _Tracked
    ) -> None:
        tracked.failed.discard(instance)
        tracked.failures.pop(instance, None)
        self._destroy_ids(env, [instance])
        # The fresh instance comes from the same artifact; EnsureInstances on the next
        # tick provisions it if this one is not ready in time.
        want = (
            len(
                [
                    i
                    for i in self._instances(env.name).get(release_id, [])
                    if i.state is State.RUNNING
                ]
            )
            + 1
        )
        self._ensure(env, release_id, want, tracked)

    def _route(self, env: Environment, state: RolloutState, action: ApplyRoute) -> None:
        names = [r for r in (action.stable, action.baseline, action.candidate) if r]
        ready = self._ready_backends(env, names)
        stable_b = ready.get(action.stable, ()) if action.stable else ()
        candidate_b = ready.get(action.candidate, ())
        baseline_b = ready.get(action.baseline, ()) if action.baseline else ()
        releases: list[RouteRelease] = []
        if not stable_b and not candidate_b:
            return  # nothing ready to send traffic to: keep serving the current table
        if not stable_b:
            releases.append(RouteRelease(action.candidate, 100, candidate_b))
        elif action.stable is not None and (
            not candidate_b or (action.weight == 0 and not action.preview)
        ):
            releases.append(RouteRelease(action.stable, 100, stable_b))
        elif action.stable is not None:
            # A baseline share with no ready baseline instance stays with stable.
            share = action.baseline_weight if baseline_b else 0
            releases.append(RouteRelease(action.stable, 100 - action.weight - share, stable_b))
            if action.baseline is not None and share:
                releases.append(RouteRelease(action.baseline, share, baseline_b))
            releases.append(RouteRelease(action.candidate, action.weight, candidate_b))
        rules: tuple[HeaderMatch, ...] = ()
        listeners: tuple[Listener, ...] = ()
        strategy = env.strategy.blue_green
        if action.preview and candidate_b and strategy is not None:
            rules = (HeaderMatch(strategy.preview_header, PREVIEW_VALUE, action.candidate),)
            if strategy.preview_port is not None:
                # Open only while the preview is: promotion, abort and rollback all
                # clear ``preview``, which closes the port (docs/rollouts.md).
                listeners = (Listener(strategy.preview_port, action.candidate),)
        current = self._router.current()
        generation = next_generation(current, self._terms.get(env.name))
        table = RouteTable(
            generation,
            env.name,
            tuple(releases),
            rules,
            sticky=_sticky(env),
            listeners=listeners,
        )
        if current is not None and _same_split(current, table):
            return
        self.check_term(env.name)
        self._router.apply(table)
        weights = {r.name: r.weight for r in releases}
        self._recorder.record(
            EventKind.TRAFFIC_CHANGE,
            actor=self._actor,
            environment=env.name,
            release=action.candidate,
            details={
                "deployment": state.deployment,
                "weights": weights,
                "generation": generation,
                "preview": bool(rules),
                **({"previewPort": listeners[0].port} if listeners else {}),
            },
        )

    def _ready_backends(
        self, env: Environment, releases: list[str], *, exclude: frozenset[str] = frozenset()
    ) -> dict[str, tuple[Backend, ...]]:
        mine = self._instances(env.name)
        out: dict[str, tuple[Backend, ...]] = {}
        tracked = self._track(env.name)
        for release in releases:
            ready = [
                Backend(i.host, i.port)
                for i in mine.get(release, [])
                if i.state is State.RUNNING
                and i.id.value not in tracked.failed
                and i.id.value not in exclude
                and isinstance(self._provider.health(i.id, timeout=env.health.timeout), Healthy)
            ]
            out[release] = tuple(sorted(ready, key=lambda b: b.address))
        return out

    def _start_analysis(
        self,
        env: Environment,
        state: RolloutState,
        step: int,
        names: tuple[str, ...],
        duration: float,
        tracked: _Tracked,
    ) -> None:
        if tracked.session is not None and tracked.session.belongs_to(state.deployment, step):
            return
        tracked.session = self._session(env, state, step, names, duration, [])
        if self._journal is not None:
            self._journal.forget_rounds(
                env.name, keep=(state.deployment, step), epoch=self._terms.get(env.name)
            )

    def _session(
        self,
        env: Environment,
        state: RolloutState,
        step: int,
        names: tuple[str, ...],
        duration: float,
        rounds: list[dict[str, Any]],
    ) -> AnalysisSession:
        """The step's session: fresh (no rounds) or rebuilt from the journal's rounds."""
        chosen = [m for m in env.analysis.metrics if not names or m.name in names]
        if state.stable is None:
            # A first release has no baseline: only absolute (threshold) judges apply.
            chosen = [m for m in chosen if m.judge is Judge.THRESHOLD]
        started = state.step_started if state.step_started is not None else self._wall()
        return AnalysisSession.resume(
            step=step,
            canary=state.candidate,
            baseline=planner.baseline_for(env, state),
            deadline=started + duration,
            metrics=chosen,
            rounds=rounds,
            deployment=state.deployment,
        )

    def _decommission(self, env: Environment, state: RolloutState, release: ReleaseId) -> None:
        instances = self._instances(env.name).get(release, [])
        self._destroy_ids(env, [i.id.value for i in instances])
        self._recorder.record(
            EventKind.DECOMMISSION,
            actor=self._actor,
            environment=env.name,
            release=release,
            details={"deployment": state.deployment, "instances": [i.id.value for i in instances]},
        )

    def _destroy_ids(self, env: Environment, ids: list[str]) -> None:
        by_id = {i.id.value: i for group in self._instances(env.name).values() for i in group}
        for value in ids:
            instance = by_id.get(value)
            if instance is not None:
                self._forget_listing(env.name)
                self.check_term(env.name)
                self._provider.destroy(instance.id, drain_timeout=DRAIN_TIMEOUT)

    # --- the ledger ----------------------------------------------------------------------

    def _record_transition(
        self, env: Environment, before: RolloutState, decision: Decision, recorder: Recorder
    ) -> None:
        """The events of one transition, handed to ``recorder`` (a ``_Drafts``: they
        are committed with the state)."""
        after = decision.state
        release = self._desired.release(ReleaseId(after.candidate))
        artifact = release.artifact if release else None
        if after.step != before.step or after.phase != before.phase:
            recorder.record(
                EventKind.ROLLOUT_STEP,
                actor=self._actor,
                environment=env.name,
                release=after.candidate,
                details={
                    "deployment": after.deployment,
                    "step": after.step,
                    "phase": str(after.phase),
                    "note": decision.note,
                    "weights": self._weights(env, after),
                },
            )
        self._record_passed_analyses(env, before, after, recorder)
        rolling = {Phase.ROLLING_BACK, Phase.ROLLED_BACK}
        if (
            after.phase in rolling
            and before.phase not in rolling
            # A rollback to warm instances ends in the decision that starts it; an
            # analysis failure is recorded as a verdict either way.
            and (after.phase is Phase.ROLLING_BACK or "analysis" in after.reason)
        ):
            recorder.record(
                EventKind.ANALYSIS_VERDICT
                if "analysis" in after.reason
                else EventKind.HEALTH_FAILURE,
                actor=self._actor,
                environment=env.name,
                release=after.candidate,
                details={
                    "deployment": after.deployment,
                    "verdict": "fail",
                    "reasons": [after.reason],
                    "detected_at": _rfc3339(after.detected_at or self._wall()),
                    "baseline": self.baseline_info(env.name, before),
                },
            )
        if (
            after.fast_track
            and after.phase is Phase.SUCCEEDED
            and before.phase is not Phase.SUCCEEDED
        ):
            # A manual rollback finished: record it as a rollback of what was stable.
            recorder.record(
                EventKind.ROLLBACK,
                actor=self._actor,
                artifact=artifact,
                environment=env.name,
                release=after.stable or after.candidate,
                links={"previous_release": after.candidate},
                details={
                    "deployment": after.deployment,
                    "reason": "manual rollback",
                    "detected_at": _rfc3339(after.started),
                    "restored_at": _rfc3339(self._wall()),
                    "weights": {after.candidate: 100},
                },
            )
            return
        if after.phase is Phase.SUCCEEDED and before.phase is not Phase.SUCCEEDED:
            info = self._commit_info(artifact) if artifact else CommitInfo()
            details: dict[str, Any] = {
                "deployment": after.deployment,
                "weights": {after.candidate: 100},
            }
            if info.commit_time:
                details["commit_time"] = info.commit_time
            links: dict[str, str] = {"config": release.config} if release else {}
            if after.stable:
                links["previous_release"] = after.stable
            recorder.record(
                EventKind.DEPLOY_COMPLETE,
                actor=self._actor,
                artifact=artifact,
                environment=env.name,
                release=after.candidate,
                links=links,
                details=details,
            )
        if after.phase is Phase.ROLLED_BACK and before.phase is not Phase.ROLLED_BACK:
            restored: dict[str, str] = {"previous_release": after.stable} if after.stable else {}
            recorder.record(
                EventKind.ROLLBACK,
                actor=self._actor,
                artifact=artifact,
                environment=env.name,
                release=after.candidate,
                links=restored,
                details={
                    "deployment": after.deployment,
                    "reason": after.reason,
                    "detected_at": _rfc3339(after.detected_at or self._wall()),
                    "restored_at": _rfc3339(self._wall()),
                    "weights": {after.stable: 100} if after.stable else {},
                },
            )

    def _record_passed_analyses(
        self, env: Environment, before: RolloutState, after: RolloutState, recorder: Recorder
    ) -> None:
        """One ``analysis.verdict`` per analysis step the rollout moved past: what was
        decided, against which baseline, with the figures."""
        if after.phase not in {Phase.STEPPING, Phase.SUCCEEDED} or after.step <= before.step:
            return
        steps = FAST_TRACK if after.fast_track else steps_for(env)
        tracked = self._track(env.name)
        session = tracked.session
        for index in range(before.step, min(after.step, len(steps))):
            if not isinstance(steps[index], Analyze):
                continue
            ran = session is not None and session.belongs_to(after.deployment, index)
            seen = tracked.outcome
            status = seen[2] if seen is not None and seen[:2] == (after.deployment, index) else None
            # Past an analysis step without a pass: promoted by hand over an inconclusive one.
            verdict = "pass" if isinstance(status, planner.Passed) else "inconclusive"
            recorder.record(
                EventKind.ANALYSIS_VERDICT,
                actor=self._actor,
                environment=env.name,
                release=after.candidate,
                details={
                    "deployment": after.deployment,
                    "step": index,
                    "verdict": verdict,
                    "summary": status.summary if isinstance(status, planner.Passed) else "",
                    "baseline": self.baseline_info(env.name, replace(before, step=index)),
                    "figures": session.figures() if session is not None and ran else {},
                },
            )

    def baseline_info(
        self, environment: str, state: RolloutState | None = None, *, count: bool = True
    ) -> dict[str, Any]:
        """Which baseline the rollout's analysis compares with at ``state``'s step (the
        persisted rollout by default): ``fresh`` (the group started with the canary)
        or ``stable`` (the stable release's warm instances), its name, and (``count``)
        how many of its instances run; ``None`` when the provider cannot say now."""
        env = self._environment(environment)
        state = state or self._desired.rollout(environment)
        if state is None:
            return {}
        name = planner.baseline_for(env, state)
        if name is None:
            return {"kind": "none"}
        kind = "fresh" if name == state.baseline else "stable"
        info: dict[str, Any] = {"kind": kind, "release": name}
        if count:
            # Listed here rather than through the tick's cache: the API's threads ask too.
            selector = {SERVICE: self.spec.service, ENVIRONMENT: environment, RELEASE: name}
            try:
                listed = self._provider.list(selector)
            except KilnError:
                info["instances"] = None  # a status read never fails for a count
            else:
                info["instances"] = len([i for i in listed if i.state is State.RUNNING])
        return info

    def _weights(self, env: Environment, state: RolloutState) -> dict[str, int]:
        if state.stable is None:
            return {state.candidate: 100} if state.weight or state.phase is Phase.SUCCEEDED else {}
        group = planner.baseline_for(env, state)
        if group is not None and group != state.stable:
            share = fresh.share(state.weight)
            return {
                state.stable: 100 - state.weight - share,
                group: share,
                state.candidate: state.weight,
            }
        return {state.stable: 100 - state.weight, state.candidate: state.weight}

    # --- helpers -------------------------------------------------------------------------

    def _forget_listing(self, environment: str) -> None:
        if self._listing is not None:
            self._listing.pop(environment, None)

    def _track(self, environment: str) -> _Tracked:
        tracked = self._tracked.get(environment)
        if tracked is None:
            tracked = self._tracked[environment] = _Tracked(since=self._wall())
        return tracked

    def _environment(self, name: str) -> Environment:
        try:
            return self.spec.environment(name)
        except KeyError:
            known = ", ".join(e.name for e in self.spec.environments)
            raise NotFound(f"no environment {name!r} in the spec", hint=f"known: {known}") from None

    def _deployment(self, environment: str) -> str:
        state = self._desired.rollout(environment)
        return state.deployment if state else ""

    def _wall(self) -> float:
        return self._clock.now().timestamp()

    def analysis_figures(self, environment: str) -> dict[str, dict[str, float]]:
        session = self._tracked.get(environment, _Tracked()).session
        return session.figures() if session else {}

    def steps(self, environment: str, *, fast_track: bool = False) -> list[str]:
        chosen = FAST_TRACK if fast_track else steps_for(self._environment(environment))
        return [describe(s) for s in chosen]

    # Read-only views for the dashboard (``kiln.services.dashboard``): the same
    # provider and router this executor drives, so what it shows is what it acts on.
    @property
    def provider(self) -> Provider:
        return self._provider

    @property
    def router(self) -> Router:
        return self._router


class _Drafts:
    """A ``Recorder`` that keeps the events it is given as drafts, to commit them with
    the transition they describe (``RolloutExecutor._commit``)."""

    def __init__(self) -> None:
        self.drafts: list[EventDraft] = []

    def record(
        self,
        kind: EventKind,
        *,
        actor: str,
        artifact: str | None = None,
        environment: str | None = None,
        release: str | None = None,
        links: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        self.drafts.append(
            EventDraft(
                kind=kind,
                actor=actor,
                artifact=artifact,
                environment=environment,
                release=release,
                links=dict(links or {}),
                details=dict(details or {}),
            )
        )
        return len(self.drafts)


def _sticky(env: Environment) -> Sticky | None:
    """``router.sticky: true`` keeps a client on the release it first landed on."""
    return Sticky() if env.router.sticky else None


def _same_split(a: RouteTable, b: RouteTable) -> bool:
    return (
        a.releases == b.releases
        and a.rules == b.rules
        and a.listeners == b.listeners
        and a.sticky == b.sticky
        and a.environment == b.environment
    )


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


__all__ = ["AFTER_STATE_SAVE", "Analyze", "CommitInfo", "RolloutExecutor"]
