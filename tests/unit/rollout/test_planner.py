"""The rollout planner, driven through whole stories against a small simulated world.

The world applies each action the way a real executor would (instances become
ready, routes change) and checks the actions' contract as it goes: traffic never
reaches a release with no ready instance, and a rollback is one route change.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from kiln.core.rollout.planner import (
    AnalysisOutcome,
    ApplyRoute,
    Decision,
    Decommission,
    EnsureInstances,
    Failed,
    Inconclusive,
    MarkStable,
    Observed,
    Passed,
    Pending,
    Phase,
    ReplaceInstance,
    RolloutState,
    StartAnalysis,
    Wait,
    decide,
)
from kiln.core.rollout.steps import (
    Analyze,
    Bake,
    Pause,
    Preview,
    SetWeight,
    candidate_replicas,
    steps_for,
)
from kiln.core.spec.models import Environment

PASSED = Passed()


def env(**fields: object) -> Environment:
    return Environment.model_validate({"name": "prod", **fields})


CANARY = {
    "replicas": 4,
    "strategy": {
        "canary": {
            "steps": [
                {"setWeight": 25},
                {"analysis": {"duration": "30s"}},
                {"setWeight": 50},
                {"pause": {"duration": "10s"}},
            ]
        }
    },
}


@dataclass
class World:
    """A fake runtime + router that checks the executor's contract."""

    ready: dict[str, int] = field(default_factory=dict)
    weight: int | None = 0
    preview: bool = False
    routes: list[ApplyRoute] = field(default_factory=list)
    decommissioned: list[str] = field(default_factory=list)
    stable_marks: list[str] = field(default_factory=list)
    analyses: list[int] = field(default_factory=list)

    def apply(self, decision: Decision) -> None:
        for action in decision.actions:
            match action:
                case EnsureInstances(release, count):
                    self.ready[release] = max(self.ready.get(release, 0), count)
                case ReplaceInstance(release, _):
                    pass  # a replacement from the same artifact; count unchanged
                case ApplyRoute(stable, candidate, weight, preview):
                    if weight > 0:
                        assert self.ready.get(candidate, 0) > 0, "traffic to an unready release"
                    if weight < 100 and stable is not None:
                        assert self.ready.get(stable, 0) > 0, "traffic to an unready stable"
                    self.weight, self.preview = weight, preview
                    self.routes.append(action)
                case Decommission(release):
                    self.decommissioned.append(release)
                    self.ready[release] = 0
                case MarkStable(release):
                    self.stable_marks.append(release)
                case StartAnalysis(step, _, _):
                    self.analyses.append(step)
                case Wait():
                    pass


def run(
    spec: Environment,
    *,
    stable: str | None = "v1",
    verdict: AnalysisOutcome = PASSED,
    tick: float = 5.0,
    limit: int = 200,
    promote_at: float | None = None,
    abort_at: float | None = None,
    failures: dict[float, tuple[str, ...]] | None = None,
    world: World | None = None,
) -> tuple[RolloutState, World, list[Decision]]:
    world = world or World(ready={"v1": spec.replicas} if stable else {})
    state = RolloutState.begin("prod", "v2", stable, now=0.0)
    decisions: list[Decision] = []
    now = 0.0
    for _ in range(limit):
        seen = Observed(
            now=now,
            candidate_ready=world.ready.get("v2", 0),
            stable_ready=world.ready.get(stable, 0) if stable else 0,
            failed_instances=(failures or {}).get(now, ()),
            route_weight=world.weight,
            route_preview=world.preview,
            analysis=verdict,
            promote_requested=promote_at is not None and now >= promote_at,
            abort_requested=abort_at is not None and now >= abort_at,
        )
        decision = decide(spec, state, seen)
        decisions.append(decision)
        world.apply(decision)
        state = decision.state
        if state.phase.terminal:
            return state, world, decisions
        now += tick
    return state, world, decisions


# --- steps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (
            {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}]}},
            (SetWeight(10), Pause(None), SetWeight(100)),
        ),
        (
            {"canary": {"steps": [{"setWeight": 100}]}},
            (SetWeight(100),),
        ),
        (
            {"blueGreen": {"autoPromotionSeconds": None, "bake": "1m"}},
            (Preview("x-kiln-preview", None), Pause(None), SetWeight(100), Bake(60.0)),
        ),
        (
            {"blueGreen": {"previewPort": 9001, "autoPromotionSeconds": None}},
            (Preview("x-kiln-preview", 9001), Pause(None), SetWeight(100)),
        ),
        (
            {"blueGreen": {"autoPromotionSeconds": 0, "prePromotionAnalysis": {"duration": "20s"}}},
            (
                Preview("x-kiln-preview", None),
                Analyze(20.0, (), "pre-promotion analysis"),
                SetWeight(100),
            ),
        ),
    ],
)
def test_strategies_compile_to_steps(
    strategy: dict[str, object], expected: tuple[object, ...]
) -> None:
    assert steps_for(env(strategy=strategy)) == expected


@pytest.mark.parametrize(
    ("replicas", "weight", "blue_green", "expected"),
    [
        (4, 25, False, 1),
        (4, 50, False, 2),
        (4, 100, False, 4),
        (3, 10, False, 1),
        (4, 0, False, 1),
        (0, 50, False, 0),
        (4, 10, True, 4),
    ],
)
def test_canary_instances_scale_with_weight(
    replicas: int, weight: int, blue_green: bool, expected: int
) -> None:
    assert candidate_replicas(replicas, weight, blue_green=blue_green) == expected


# --- stories -------------------------------------------------------------------------


def test_a_good_canary_walks_every_weight_then_decommissions_the_old_release() -> None:
    state, world, _ = run(env(**CANARY))
    assert state.phase is Phase.SUCCEEDED
    assert [r.weight for r in world.routes] == [25, 50, 100]
    assert world.stable_marks == ["v2"]
    assert world.decommissioned == ["v1"]
    assert world.ready["v2"] == 4


def test_canary_instances_are_provisioned_before_each_weight() -> None:
    _, _, decisions = run(env(**CANARY))
    ensures = [a.count for d in decisions for a in d.actions if isinstance(a, EnsureInstances)]
    assert ensures == [1, 2, 4]


def test_a_failed_analysis_rolls_back_in_one_route_change_to_the_warm_release() -> None:
    state, world, decisions = run(env(**CANARY), verdict=Failed("error rate 5.0% vs 1.0%"))
    assert state.phase is Phase.ROLLED_BACK
    assert "error rate 5.0%" in state.reason
    last = decisions[-1]
    assert [type(a) for a in last.actions].count(ApplyRoute) == 1
    assert world.weight == 0
    assert world.decommissioned == ["v2"]
    assert world.stable_marks == ["v1"]


def test_an_inconclusive_analysis_never_passes() -> None:
    state, _, _ = run(env(**CANARY), verdict=Inconclusive("12 requests < minSamples 50"))
    assert state.phase is Phase.ROLLED_BACK
    assert "inconclusive" in state.reason


def test_a_pending_analysis_waits_until_its_deadline_then_fails_closed() -> None:
    state, world, _ = run(env(**CANARY), verdict=Pending())
    assert state.phase is Phase.ROLLED_BACK
    assert world.analyses and set(world.analyses) == {1}


def test_abort_rolls_back_at_any_step() -> None:
    state, world, _ = run(env(**CANARY), abort_at=15.0)
    assert state.phase is Phase.ROLLED_BACK
    assert state.reason == "aborted by operator"
    assert world.weight == 0


def test_failed_instances_are_replaced_until_the_budget_is_spent() -> None:
    spec = env(**CANARY, health={"maxReplacements": 2})
    state, _, decisions = run(spec, failures={5.0: ("i-1",), 10.0: ("i-2",), 15.0: ("i-3",)})
    replaced = [a.instance for d in decisions for a in d.actions if isinstance(a, ReplaceInstance)]
    assert replaced == ["i-1", "i-2"]
    assert state.phase is Phase.ROLLED_BACK
    assert "maxReplacements 2" in state.reason


def test_the_progress_deadline_rolls_back() -> None:
    spec = env(**{**CANARY, "rollback": {"progressDeadline": "12s"}}, analysis={})
    state, _, _ = run(spec, verdict=Pending())
    assert state.phase is Phase.ROLLED_BACK
    assert "progress deadline of 12s" in state.reason


def test_blue_green_waits_for_manual_promotion_behind_the_preview_header() -> None:
    spec = env(replicas=2, strategy={"blueGreen": {"autoPromotionSeconds": None}})
    state, world, decisions = run(spec, promote_at=50.0)
    assert state.phase is Phase.SUCCEEDED
    assert world.routes[0] == ApplyRoute("v1", "v2", 0, True)
    paused = [d for d in decisions if d.note.endswith("paused")]
    assert len(paused) == 9  # ready at t=5 s, then every 5 s until the promotion at 50 s
    assert world.routes[-1].weight == 100


def test_an_aborted_preview_ends_the_preview_route_and_port() -> None:
    # The executor opens the preview port exactly while ApplyRoute.preview is True.
    spec = env(
        replicas=2, strategy={"blueGreen": {"previewPort": 9001, "autoPromotionSeconds": None}}
    )
    state, world, _ = run(spec, abort_at=30.0)
    assert state.phase is Phase.ROLLED_BACK
    assert world.routes[0] == ApplyRoute("v1", "v2", 0, True)
    assert world.routes[-1] == ApplyRoute("v1", "v2", 0, False)


def test_rollback_during_bake_when_the_old_instances_are_gone_provisions_fresh_ones() -> None:
    spec = env(replicas=2, strategy={"blueGreen": {"autoPromotionSeconds": 0, "bake": "60s"}})
    world = World(ready={"v1": 2})
    # Promote to 100%, then lose the warm stable release and abort during bake.
    state, world, _ = run(spec, world=world, abort_at=20.0, tick=5.0, limit=3)
    assert state.phase is Phase.STEPPING and world.weight == 100
    world.ready["v1"] = 0
    seen = Observed(
        now=20.0, candidate_ready=2, stable_ready=0, route_weight=100, abort_requested=True
    )
    first = decide(spec, state, seen)
    assert first.state.phase is Phase.ROLLING_BACK
    assert not any(isinstance(a, ApplyRoute) for a in first.actions)
    assert EnsureInstances("v1", 2) in first.actions
    again = decide(spec, first.state, replace(seen, now=21.0, stable_ready=2))
    assert again.state.phase is Phase.ROLLED_BACK
    assert ApplyRoute("v1", "v2", 0, False) in again.actions


def test_a_failed_first_deploy_leaves_nothing_behind() -> None:
    state, world, _ = run(env(**CANARY), stable=None, verdict=Failed("boom"))
    assert state.phase is Phase.ROLLED_BACK
    assert world.decommissioned == ["v2"]


def test_a_crash_between_persist_and_apply_converges_on_replay() -> None:
    spec = env(**CANARY)
    state = RolloutState.begin("prod", "v2", "v1", now=0.0)
    seen = Observed(now=0.0, candidate_ready=1, stable_ready=4, route_weight=0)
    decision = decide(spec, state, seen)
    assert ApplyRoute("v1", "v2", 25, False) in decision.actions
    # The controller persisted decision.state and died before the route changed.
    replay = decide(spec, decision.state, replace(seen, now=1.0))
    assert ApplyRoute("v1", "v2", 25, False) in replay.actions
    assert replay.state.step == decision.state.step
    # Once the router serves the split, the same state asks for nothing new.
    settled = decide(spec, decision.state, replace(seen, now=2.0, route_weight=25))
    assert not any(isinstance(a, ApplyRoute) for a in settled.actions)


def test_terminal_rollouts_do_nothing() -> None:
    done = replace(RolloutState.begin("prod", "v2", "v1", 0.0), phase=Phase.SUCCEEDED)
    seen = Observed(now=99.0, candidate_ready=0, stable_ready=0, abort_requested=True)
    assert decide(env(**CANARY), done, seen).actions == ()
