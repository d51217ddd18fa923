"""The rollout planner: (environment spec, persisted state, observations) → decision.

Pure. The controller's executor persists ``Decision.state`` *before* it applies
``Decision.actions``, and every action is idempotent (``EnsureInstances`` means
"make this many ready instances exist", ``ApplyRoute`` carries the whole
split). So a controller killed at any point and started again re-plans from the
persisted state and fresh observations, and converges to the same place: it
never restarts a rollout from scratch and never double-provisions.

Order of precedence in one decision, each a reason a reviewer can read:

1. terminal states do nothing;
2. ``kiln abort`` rolls back;
3. the progress deadline, then the step deadline, roll back;
4. failed candidate instances are replaced, until ``maxReplacements`` is spent,
   then the rollout rolls back (when ``rollback.onHealthFailure``);
5. the route is re-applied whenever the observed split differs from the declared
   one (this is what makes a crash between "persist" and "apply" harmless);
6. otherwise the current step advances, waits, or fails.

The stable release keeps all its replicas until the rollout completes, so a
rollback is one atomic route change to warm instances.

A rollout with a fresh baseline (``RolloutState.baseline``, set at start from
``canary.baseline: fresh``) provisions the baseline group with the canary, as
many instances and the same weight (``kiln.core.rollout.baseline``), until the
last analysis step is done; from then on, and on every way out (promotion,
rollback), the route leaves it out and it is decommissioned. Its failed
instances are replaced like the canary's, from the same budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from kiln.core.rollout import baseline as fresh
from kiln.core.rollout.steps import (
    Analyze,
    Bake,
    Pause,
    Preview,
    SetWeight,
    Step,
    candidate_replicas,
    describe,
    steps_for,
)
from kiln.core.spec.models import Environment

FAST_TRACK: tuple[Step, ...] = (SetWeight(100),)


class Phase(StrEnum):
    PROVISIONING = "provisioning"
    STEPPING = "stepping"
    ROLLING_BACK = "rolling-back"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled-back"

    @property
    def terminal(self) -> bool:
        return self in {Phase.SUCCEEDED, Phase.ROLLED_BACK}


@dataclass(frozen=True)
class RolloutState:
    """What the controller persists for one rollout. Times are epoch seconds."""

    environment: str
    candidate: str
    stable: str | None
    phase: Phase
    started: float
    step: int = 0
    step_started: float | None = None
    weight: int = 0  # declared candidate weight
    preview: bool = False  # candidate reachable through the preview route
    replacements: int = 0
    reason: str = ""
    deployment: str = ""  # the ledger's id of this attempt (docs/ledger.md)
    fast_track: bool = False  # `kiln rollback`: straight to 100% once ready, no analysis
    detected_at: float | None = None  # when the failure that started a rollback was seen
    baseline: str | None = None  # the fresh baseline group's name; None: judged against stable

    @classmethod
    def begin(
        cls, environment: str, candidate: str, stable: str | None, now: float
    ) -> RolloutState:
        return cls(environment, candidate, stable, Phase.PROVISIONING, started=now)


# --- observations --------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """The analysis of the current step has not decided yet."""


@dataclass(frozen=True)
class Passed:
    summary: str = ""


@dataclass(frozen=True)
class Failed:
    reason: str


@dataclass(frozen=True)
class Inconclusive:
    reason: str


AnalysisOutcome = Pending | Passed | Failed | Inconclusive


@dataclass(frozen=True)
class Observed:
    now: float
    candidate_ready: int
    stable_ready: int
    failed_instances: tuple[str, ...] = ()  # candidate instances that failed health
    route_weight: int | None = None  # candidate weight the router serves; None = unknown
    route_preview: bool = False
    analysis: AnalysisOutcome = Pending()
    promote_requested: bool = False
    abort_requested: bool = False
    baseline_ready: int = 0
    baseline_present: int = 0  # baseline instances in any state (decommission until none)
    baseline_failed: tuple[str, ...] = ()  # baseline instances that failed health
    route_baseline: int = 0  # the baseline group's weight the router serves


# --- actions -------------------------------------------------------------------------


@dataclass(frozen=True)
class EnsureInstances:
    release: str
    count: int


@dataclass(frozen=True)
class ReplaceInstance:
    release: str
    instance: str


@dataclass(frozen=True)
class ApplyRoute:
    """The whole split, applied atomically: candidate ``weight``%, the fresh baseline
    group (if any) ``baseline_weight``%, stable the rest."""

    stable: str | None
    candidate: str
    weight: int
    preview: bool
    baseline: str | None = None
    baseline_weight: int = 0


@dataclass(frozen=True)
class StartAnalysis:
    """Idempotent: start (or keep) the analysis of step ``step`` for ``duration``."""

    step: int
    metrics: tuple[str, ...]
    duration: float


@dataclass(frozen=True)
class Decommission:
    release: str


@dataclass(frozen=True)
class MarkStable:
    """The declared state changes first: the environment's current release is now ``release``."""

    release: str


@dataclass(frozen=True)
class Wait:
    reason: str
    until: float | None = None  # None: until something is observed (promote, readiness)


Action = EnsureInstances | ReplaceInstance | ApplyRoute | StartAnalysis | Decommission | MarkStable
Plan = tuple[Action | Wait, ...]


@dataclass(frozen=True)
class Decision:
    state: RolloutState
    actions: Plan
    note: str  # why: one line for status displays and the ledger


def decide(env: Environment, state: RolloutState, seen: Observed) -> Decision:
    """The single entry point. See the module docstring for the order of precedence."""
    steps = FAST_TRACK if state.fast_track else steps_for(env)
    if state.phase.terminal:
        return Decision(state, (), f"rollout {state.phase}")
    if state.phase is not Phase.ROLLING_BACK:
        guard = _guards(env, steps, state, seen)
        if guard is not None:
            return guard
    if state.phase is Phase.ROLLING_BACK:
        return _roll_back(env, state, seen)
    healed = _replace_failed(env, steps, state, seen)
    if healed is not None:
        return healed
    if state.phase is Phase.PROVISIONING:
        return _provision(env, steps, state, seen)
    return _step(env, steps, state, seen)


def _guards(
    env: Environment, steps: tuple[Step, ...], state: RolloutState, seen: Observed
) -> Decision | None:
    if seen.abort_requested:
        return _begin_rollback(env, state, seen, "aborted by operator")
    if seen.now - state.started > env.rollback.progress_deadline:
        deadline = env.rollback.progress_deadline
        return _begin_rollback(env, state, seen, f"progress deadline of {deadline:g}s passed")
    limit = env.rollback.step_deadline
    if (
        limit is not None
        and state.phase is Phase.STEPPING
        and state.step_started is not None
        and state.step < len(steps)
        and steps[state.step] != Pause(None)  # waiting for a human has no deadline
        and seen.now - state.step_started > limit
    ):
        return _begin_rollback(
            env, state, seen, f"step {state.step} ({describe(steps[state.step])}) passed {limit:g}s"
        )
    return None


def _replace_failed(
    env: Environment, steps: tuple[Step, ...], state: RolloutState, seen: Observed
) -> Decision | None:
    failed = [(state.candidate, i) for i in seen.failed_instances]
    if state.baseline is not None and baseline_live(steps, state):
        failed += [(state.baseline, i) for i in seen.baseline_failed]
    if not failed:
        return None
    budget = env.health.max_replacements - state.replacements
    if budget < len(failed):
        if env.rollback.on_health_failure:
            return _begin_rollback(
                env,
                state,
                seen,
                f"health: {len(failed)} instance(s) failed after "
                f"{state.replacements} replacement(s) "
                f"(maxReplacements {env.health.max_replacements})",
            )
        return Decision(state, (Wait("health failures; rollback on health disabled"),), "stuck")
    actions = tuple(ReplaceInstance(release, i) for release, i in failed)
    new = replace(state, replacements=state.replacements + len(failed))
    return Decision(new, actions, f"replacing {len(actions)} failed instance(s)")


def _provision(
    env: Environment, steps: tuple[Step, ...], state: RolloutState, seen: Observed
) -> Decision:
    want = _wanted_candidates(env, steps, 0)
    ensure = _ensure(steps, state, want)
    if _enough(steps, state, seen, want):
        new = replace(state, phase=Phase.STEPPING, step=0, step_started=seen.now)
        return _step(env, steps, new, seen, note_prefix=f"{want} instance(s) ready; ")
    with_baseline = f" (+{seen.baseline_ready}/{want} baseline)" if len(ensure) > 1 else ""
    return Decision(
        state,
        (*ensure, Wait(f"waiting for {want} ready instance(s)")),
        f"provisioning: {seen.candidate_ready}/{want} ready{with_baseline}",
    )


def baseline_live(steps: tuple[Step, ...], state: RolloutState) -> bool:
    """True while the rollout's fresh baseline group should exist and take traffic:
    from provisioning until its last analysis step is done."""
    if state.baseline is None or state.phase not in {Phase.PROVISIONING, Phase.STEPPING}:
        return False
    last = fresh.last_analysis(steps)
    return last is not None and state.step <= last


def baseline_for(env: Environment, state: RolloutState) -> str | None:
    """The release name analysis compares the canary with at the current step: the
    fresh baseline group while it lives, else the stable release itself."""
    steps = FAST_TRACK if state.fast_track else steps_for(env)
    if state.baseline is not None and baseline_live(steps, state):
        return state.baseline
    return state.stable


def _ensure(steps: tuple[Step, ...], state: RolloutState, want: int) -> tuple[EnsureInstances, ...]:
    """Candidates, and as many baseline instances while the baseline lives: one
    decision, so the executor starts both groups together."""
    out: tuple[EnsureInstances, ...] = (EnsureInstances(state.candidate, want),)
    if state.baseline is not None and baseline_live(steps, state):
        out += (EnsureInstances(state.baseline, want),)
    return out


def _enough(steps: tuple[Step, ...], state: RolloutState, seen: Observed, want: int) -> bool:
    if seen.candidate_ready < want:
        return False
    return not baseline_live(steps, state) or seen.baseline_ready >= want


def _wanted_candidates(env: Environment, steps: tuple[Step, ...], index: int) -> int:
    blue_green = env.strategy.blue_green is not None
    upcoming = next((s.weight for s in steps[index:] if isinstance(s, SetWeight)), 100)
    return candidate_replicas(env.replicas, upcoming, blue_green=blue_green)


def _step(
    env: Environment,
    steps: tuple[Step, ...],
    state: RolloutState,
    seen: Observed,
    *,
    note_prefix: str = "",
) -> Decision:
    actions: list[Action | Wait] = []
    # Converge the router on the declared split before anything else.
    declared = _route(state, steps)
    if (
        seen.route_weight != state.weight
        or seen.route_preview != state.preview
        or seen.route_baseline != declared.baseline_weight
    ):
        actions.append(declared)
    # Advance through every step that completes now, in one decision.
    for _ in range(len(steps) + 1):
        if state.step >= len(steps):
            return _succeed(state, seen, actions, note_prefix)
        step = steps[state.step]
        outcome = _advance(env, steps, state, step, seen)
        if isinstance(outcome, Decision):
            if outcome.state.phase in {Phase.ROLLING_BACK, Phase.ROLLED_BACK}:
                return outcome  # the rollback's one route change replaces anything pending
            actions.extend(outcome.actions)
            actions.extend(_retire_baseline(steps, outcome.state, seen, actions))
            return Decision(outcome.state, tuple(actions), note_prefix + outcome.note)
        next_state, step_actions = outcome
        actions.extend(step_actions)
        state = replace(next_state, step=state.step + 1, step_started=seen.now)
        # A verdict observed before this decision belongs to an earlier step, never
        # to the step just entered, and signals are consumed by the step they ended.
        seen = replace(seen, analysis=Pending(), promote_requested=False)
    raise AssertionError("step loop did not terminate")  # pragma: no cover


def _retire_baseline(
    steps: tuple[Step, ...], state: RolloutState, seen: Observed, pending: list[Action | Wait]
) -> list[Action]:
    """Once the analysed steps are done: the route without the baseline group, then
    its instances decommissioned. Decided from what is observed, so a controller
    killed in between finishes the job on its next tick."""
    if state.baseline is None or baseline_live(steps, state):
        return []
    routed = [a for a in pending if isinstance(a, ApplyRoute)]
    # The split the router will serve after ``pending``: does it still send the baseline traffic?
    stale = routed[-1].baseline_weight > 0 if routed else seen.route_baseline > 0
    out: list[Action] = [_route(state, steps)] if stale else []
    if seen.baseline_present:
        out.append(Decommission(state.baseline))
    return out


def _advance(
    env: Environment,
    steps: tuple[Step, ...],
    state: RolloutState,
    step: Step,
    seen: Observed,
) -> Decision | tuple[RolloutState, list[Action | Wait]]:
    """Either the step is done (new state + actions) or a Decision that waits/fails."""
    started = state.step_started if state.step_started is not None else seen.now
    match step:
        case SetWeight(weight):
            want = _wanted_candidates(env, steps, state.step)
            if not _enough(steps, state, seen, want):
                return Decision(
                    state,
                    (
                        *_ensure(steps, state, want),
                        Wait(f"no traffic until {want} instance(s) are ready"),
                    ),
                    f"scaling to {want} instance(s) before setWeight {weight}",
                )
            new = replace(state, weight=weight, preview=state.preview and weight < 100)
            return new, ([_route(new, steps)] if new.weight != state.weight else [])
        case Preview():
            new = replace(state, preview=True)
            return new, [_route(new, steps)]
        case Pause(None):
            if seen.promote_requested:
                return state, []
            return Decision(state, (Wait("paused until `kiln promote`"),), "paused")
        case Pause(float(duration)) | Bake(float(duration)):
            if seen.promote_requested or seen.now >= started + duration:
                return state, []
            until = started + duration
            return Decision(state, (Wait(describe(step), until),), describe(step))
        case Analyze(duration, metrics, label):
            verdict = seen.analysis
            if isinstance(verdict, Failed):
                if env.rollback.on_analysis_failure:
                    return _begin_rollback(env, state, seen, f"{label}: {verdict.reason}")
                return Decision(state, (Wait(f"{label} failed: {verdict.reason}"),), "failed")
            if isinstance(verdict, Passed):
                return state, []
            deadline = started + duration
            if seen.now >= deadline:
                if isinstance(verdict, Inconclusive) and seen.promote_requested:
                    return state, []
                why = verdict.reason if isinstance(verdict, Inconclusive) else "no verdict"
                # Fail closed: too little evidence is never a pass.
                return _begin_rollback(env, state, seen, f"{label} inconclusive: {why}")
            return Decision(
                state,
                (StartAnalysis(state.step, metrics, duration), Wait(label, deadline)),
                f"{label} running",
            )
    raise AssertionError(step)  # pragma: no cover


def _succeed(
    state: RolloutState, seen: Observed, actions: list[Action | Wait], prefix: str
) -> Decision:
    done = replace(state, phase=Phase.SUCCEEDED, weight=100, preview=False, reason="")
    final: list[Action | Wait] = [a for a in actions if not isinstance(a, ApplyRoute)]
    final.insert(0, _route(done))
    final.append(MarkStable(state.candidate))
    if state.stable is not None and state.stable != state.candidate:
        final.append(Decommission(state.stable))
    if state.baseline is not None and seen.baseline_present:
        final.append(Decommission(state.baseline))
    return Decision(done, tuple(final), prefix + "promoted: 100% on the new release")


def _begin_rollback(env: Environment, state: RolloutState, seen: Observed, reason: str) -> Decision:
    rolling = replace(state, phase=Phase.ROLLING_BACK, reason=reason, detected_at=seen.now)
    decision = _roll_back(env, rolling, seen)
    return Decision(decision.state, decision.actions, f"rolling back: {reason}")


def _roll_back(env: Environment, state: RolloutState, seen: Observed) -> Decision:
    if state.stable is None:
        done = replace(state, phase=Phase.ROLLED_BACK, weight=0, preview=False)
        return Decision(done, (Decommission(state.candidate),), f"rolled back: {state.reason}")
    need = max(1, math.ceil(env.replicas / 2)) if env.replicas else 0
    if seen.stable_ready < need:
        # The warm release is gone (e.g. rollback after bake): fresh instances first;
        # traffic moves only to instances that are ready.
        return Decision(
            state,
            (
                EnsureInstances(state.stable, env.replicas),
                Wait(f"provisioning {env.replicas} instance(s) of the stable release"),
            ),
            f"rolling back: {state.reason}",
        )
    # The fresh baseline leaves with the canary, in the same decision as the route change.
    retire = (
        (Decommission(state.baseline),)
        if state.baseline is not None and seen.baseline_present
        else ()
    )
    done = replace(state, phase=Phase.ROLLED_BACK, weight=0, preview=False)
    return Decision(
        done,
        (
            _route(done),
            MarkStable(state.stable),
            Decommission(state.candidate),
            *retire,
            EnsureInstances(state.stable, env.replicas),
        ),
        f"rolled back: {state.reason}",
    )


def _route(state: RolloutState, steps: tuple[Step, ...] = ()) -> ApplyRoute:
    if state.baseline is not None and baseline_live(steps, state):
        share = fresh.share(state.weight)
        return ApplyRoute(
            state.stable, state.candidate, state.weight, state.preview, state.baseline, share
        )
    return ApplyRoute(state.stable, state.candidate, state.weight, state.preview)
