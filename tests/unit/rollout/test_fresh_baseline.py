"""The fresh baseline (``canary.baseline: fresh``): its spec, its name and weight,
and the planner's story from provisioning to retirement, against a simulated world
that checks the actions' contract (traffic only to ready groups, the baseline
never left behind)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from kiln.core.drift.model import Destroy, ExtraInstance
from kiln.core.drift.model import Observed as Seen
from kiln.core.drift.planner import ROLLOUT_NOTE, plan
from kiln.core.rollout import baseline as fresh
from kiln.core.rollout.planner import (
    AnalysisOutcome,
    ApplyRoute,
    Decision,
    Decommission,
    EnsureInstances,
    Failed,
    Observed,
    Passed,
    Phase,
    ReplaceInstance,
    RolloutState,
    baseline_for,
    decide,
)
from kiln.core.rollout.steps import steps_for
from kiln.core.spec.loader import load_spec
from kiln.core.spec.models import BaselineKind, Environment
from kiln.errors import SpecError
from tests.unit.drift.builders import R1, desired, inst, table

BASE = fresh.name_for("v1")


def env(steps: list[dict[str, object]], *, replicas: int = 4) -> Environment:
    return Environment.model_validate(
        {
            "name": "prod",
            "replicas": replicas,
            "strategy": {"canary": {"baseline": "fresh", "steps": steps}},
        }
    )


TWO_ANALYSES = env(
    [
        {"setWeight": 25},
        {"analysis": {"duration": "30s"}},
        {"setWeight": 60},
        {"analysis": {"duration": "30s"}},
        {"pause": {"duration": "10s"}},
    ]
)


# --- naming and weights --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stable"),
    [
        ("rel-0123456789abcdef+baseline", "rel-0123456789abcdef"),
        ("rel-0123456789abcdef", None),
        ("+baseline", None),
        ("rel-x+baseline+baseline", "rel-x+baseline"),
    ],
)
def test_a_baseline_group_name_maps_back_to_its_stable_release(
    name: str, stable: str | None
) -> None:
    assert fresh.stable_of(name) == stable


def test_the_name_is_the_stable_release_with_a_role_suffix() -> None:
    assert fresh.name_for("rel-0123456789abcdef") == "rel-0123456789abcdef+baseline"
    assert fresh.stable_of(fresh.name_for("rel-a")) == "rel-a"


@pytest.mark.parametrize(
    ("canary", "baseline", "stable"),
    [(0, 0, 100), (10, 10, 80), (25, 25, 50), (50, 50, 0), (60, 40, 0), (100, 0, 0)],
)
def test_the_baseline_takes_the_canarys_weight_while_stable_can_give_it(
    canary: int, baseline: int, stable: int
) -> None:
    assert fresh.share(canary) == baseline
    assert 100 - canary - fresh.share(canary) == stable


# --- the spec ------------------------------------------------------------------------


def test_the_default_baseline_is_the_stable_release() -> None:
    spec = load_spec(b"service: shop\n")
    canary = spec.environments[0].strategy.canary
    assert canary is not None and canary.baseline is BaselineKind.STABLE


def test_fresh_loads_from_yaml() -> None:
    spec = load_spec(
        b"service: shop\nenvironments:\n  - name: prod\n    strategy: {canary: {baseline: fresh}}\n"
    )
    canary = spec.environments[0].strategy.canary
    assert canary is not None and canary.baseline is BaselineKind.FRESH


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ("{canary: {baseline: warm}}", "strategy.canary.baseline"),
        (
            "{canary: {baseline: fresh, steps: [{setWeight: 50}, {pause: {duration: 5s}}]}}",
            "no canary step is an analysis",
        ),
        ("{blueGreen: {baseline: fresh}}", "strategy.blueGreen.baseline"),
    ],
)
def test_a_baseline_kiln_cannot_run_is_refused_naming_the_field(
    strategy: str, message: str
) -> None:
    document = f"service: shop\nenvironments:\n  - name: prod\n    strategy: {strategy}\n"
    with pytest.raises(SpecError) as caught:
        load_spec(document.encode())
    text = "\n".join(f"{p.path}: {p.message}" for p in caught.value.problems)
    assert message in text
    assert "strategy" in text and "baseline" in text


# --- the plan ------------------------------------------------------------------------


@dataclass
class World:
    """Ready instances per group, the served split, and the contract checks."""

    ready: dict[str, int] = field(default_factory=lambda: {"v1": 4})
    split: dict[str, int] = field(default_factory=lambda: {"v1": 100})
    routes: list[ApplyRoute] = field(default_factory=list)
    decommissioned: list[str] = field(default_factory=list)
    started_together: list[tuple[str, ...]] = field(default_factory=list)

    def apply(self, decision: Decision) -> None:
        ensured = tuple(a.release for a in decision.actions if isinstance(a, EnsureInstances))
        if ensured:
            self.started_together.append(ensured)
        for action in decision.actions:
            match action:
                case EnsureInstances(release, count):
                    self.ready[release] = max(self.ready.get(release, 0), count)
                case ApplyRoute(stable, candidate, weight, _, baseline, share):
                    split = {stable or "": 100 - weight - share, candidate: weight}
                    if baseline is not None:
                        split[baseline] = share
                    for name, part in split.items():
                        assert part == 0 or self.ready.get(name, 0) > 0, f"traffic to {name}"
                    self.split = {n: w for n, w in split.items() if w}
                    self.routes.append(action)
                case Decommission(release):
                    assert self.split.get(release, 0) == 0, f"{release} decommissioned serving"
                    self.decommissioned.append(release)
                    self.ready[release] = 0
                case _:
                    pass

    def seen(self, now: float, verdict: AnalysisOutcome, **more: object) -> Observed:
        return Observed(
            now=now,
            candidate_ready=self.ready.get("v2", 0),
            stable_ready=self.ready.get("v1", 0),
            route_weight=self.split.get("v2", 0),
            analysis=verdict,
            baseline_ready=self.ready.get(BASE, 0),
            baseline_present=self.ready.get(BASE, 0),
            route_baseline=self.split.get(BASE, 0),
            **more,  # type: ignore[arg-type]
        )


def story(
    spec: Environment, verdicts: dict[int, AnalysisOutcome] | None = None
) -> tuple[RolloutState, World, list[tuple[RolloutState, Decision]]]:
    world = World()
    state = replace(RolloutState.begin("prod", "v2", "v1", now=0.0), baseline=BASE)
    log: list[tuple[RolloutState, Decision]] = []
    now = 0.0
    for _ in range(100):
        verdict = (verdicts or {}).get(state.step, Passed())
        decision = decide(spec, state, world.seen(now, verdict))
        log.append((state, decision))
        world.apply(decision)
        state = decision.state
        if state.phase.terminal:
            break
        now += 5.0
    return state, world, log


def test_the_baseline_is_provisioned_with_the_canary_and_as_many() -> None:
    state, world, log = story(TWO_ANALYSES)
    assert state.phase is Phase.SUCCEEDED
    first = log[0][1]
    assert first.state.phase is Phase.PROVISIONING
    assert world.started_together[0] == ("v2", BASE)
    counts = {a.release: a.count for a in first.actions if isinstance(a, EnsureInstances)}
    assert counts == {"v2": 1, BASE: 1}


def test_no_step_begins_until_the_baseline_is_ready() -> None:
    state = replace(RolloutState.begin("prod", "v2", "v1", now=0.0), baseline=BASE)
    seen = Observed(now=1.0, candidate_ready=1, stable_ready=4, baseline_ready=0)
    decision = decide(TWO_ANALYSES, state, seen)
    assert decision.state.phase is Phase.PROVISIONING
    assert EnsureInstances(BASE, 1) in decision.actions


def test_during_analysis_the_baseline_gets_the_canarys_weight_and_stable_the_rest() -> None:
    _, _, log = story(TWO_ANALYSES)
    splits = [
        (r.weight, r.baseline_weight)
        for _, d in log
        for r in d.actions
        if isinstance(r, ApplyRoute) and r.baseline
    ]
    assert (25, 25) in splits  # stable 50
    assert (60, 40) in splits  # stable 0: the baseline gets what is left


def test_after_the_last_analysis_the_route_drops_the_baseline_then_it_is_decommissioned() -> None:
    state, world, log = story(TWO_ANALYSES)
    retired = next(
        (before, d) for before, d in log if any(isinstance(a, Decommission) for a in d.actions)
    )
    before, decision = retired
    assert before.phase is Phase.STEPPING
    assert decision.state.phase is Phase.STEPPING  # still pausing: the baseline left early
    kinds = [type(a).__name__ for a in decision.actions if type(a).__name__ != "Wait"]
    assert kinds.index("ApplyRoute") < kinds.index("Decommission")
    assert world.decommissioned.count(BASE) == 1
    assert world.ready[BASE] == 0
    assert state.phase is Phase.SUCCEEDED


def test_a_failed_analysis_rolls_back_and_takes_the_baseline_with_the_canary() -> None:
    state, world, log = story(TWO_ANALYSES, {1: Failed("errors: worse than the baseline")})
    assert state.phase is Phase.ROLLED_BACK
    last = log[-1][1]
    assert Decommission("v2") in last.actions and Decommission(BASE) in last.actions
    assert world.split == {"v1": 100}
    assert world.ready[BASE] == 0


def stepping(step: int, weight: int) -> RolloutState:
    """A persisted rollout at ``step`` with the canary at ``weight``, with a fresh baseline."""
    return RolloutState(
        "prod", "v2", "v1", Phase.STEPPING, started=0.0, step=step, step_started=50.0,
        weight=weight, baseline=BASE,
    )  # fmt: skip


def seeing(weight: int, **baseline: object) -> Observed:
    """Candidates and stable ready and routed at ``weight``; the baseline as given."""
    return Observed(
        now=52.0, candidate_ready=3, stable_ready=4, route_weight=weight,
        **baseline,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_controller_killed_between_the_route_and_the_decommission_finishes_it() -> None:
    # Persisted state is past the last analysis; the baseline's instances still run.
    seen = seeing(60, baseline_ready=3, baseline_present=3, route_baseline=0)
    decision = decide(TWO_ANALYSES, stepping(4, 60), seen)
    assert Decommission(BASE) in decision.actions
    gone = replace(seen, baseline_ready=0, baseline_present=0)
    again = decide(TWO_ANALYSES, stepping(4, 60), gone)
    assert not any(isinstance(a, Decommission) for a in again.actions)


def test_a_router_still_serving_the_baseline_after_analysis_is_converged_first() -> None:
    seen = seeing(60, baseline_ready=3, baseline_present=3, route_baseline=40)
    actions = decide(TWO_ANALYSES, stepping(4, 60), seen).actions
    route = next(a for a in actions if isinstance(a, ApplyRoute))
    assert route.baseline is None and route.weight == 60
    assert actions.index(route) < actions.index(Decommission(BASE))


def test_a_failed_baseline_instance_is_replaced_as_a_baseline_from_the_same_budget() -> None:
    seen = seeing(
        25, baseline_ready=0, baseline_present=1, baseline_failed=("shop-prod-0001",),
        route_baseline=25,
    )  # fmt: skip
    decision = decide(TWO_ANALYSES, stepping(1, 25), seen)
    assert decision.actions == (ReplaceInstance(BASE, "shop-prod-0001"),)
    assert decision.state.replacements == 1


def test_analysis_compares_with_the_fresh_group_only_while_it_lives() -> None:
    steps = steps_for(TWO_ANALYSES)
    running = replace(RolloutState.begin("prod", "v2", "v1", now=0.0), baseline=BASE)
    assert baseline_for(TWO_ANALYSES, replace(running, phase=Phase.STEPPING, step=3)) == BASE
    after = replace(running, phase=Phase.STEPPING, step=len(steps) - 1)
    assert baseline_for(TWO_ANALYSES, after) == "v1"
    assert baseline_for(TWO_ANALYSES, replace(running, baseline=None, step=1)) == "v1"


def test_without_a_fresh_baseline_nothing_changes() -> None:
    spec = Environment.model_validate(
        {
            "name": "prod",
            "replicas": 4,
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {}}]}},
        }
    )
    state = RolloutState.begin("prod", "v2", "v1", now=0.0)
    decision = decide(spec, state, Observed(now=0.0, candidate_ready=0, stable_ready=4))
    assert [a for a in decision.actions if isinstance(a, EnsureInstances)] == [
        EnsureInstances("v2", 2)
    ]


# --- after the rollout: drift treats a leftover group as an undeclared release --------


def test_drift_leaves_a_baseline_alone_during_a_rollout_and_removes_it_after() -> None:
    group = replace(R1, id=fresh.name_for(R1.id))  # same artifact and config, its own name
    serving = [inst(1), inst(2)]
    left = inst(3, group)
    world = Seen([*serving, left], table((R1, 100, serving)))

    during = plan(desired(rollout=True), world)
    assert (during.findings, during.actions, during.note) == ((), (), ROLLOUT_NOTE)

    after = plan(desired(), world)
    assert after.findings == (ExtraInstance(left.id.value, group.id, f"is not release {R1.id}"),)
    assert after.actions == (Destroy(left.id.value, "not the declared release"),)
