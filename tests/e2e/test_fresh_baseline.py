"""A canary judged against a fresh baseline, on real processes and the embedded
router, under live traffic (``canary.baseline: fresh``).

While the canary is analysed, fresh instances of the stable release serve the
canary's share under their own name (``<stable>+baseline``), so the router counts
them apart; the judge reads canary and that group; afterwards nothing of the
group is left, whether the canary was promoted or rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from kiln.core.analysis.observations import Reading
from kiln.core.ledger.kinds import EventKind
from kiln.core.rollout import baseline as fresh
from kiln.core.rollout.planner import Decision, Phase
from kiln.core.runtime.model import ENVIRONMENT, RELEASE
from kiln.core.spec.loader import load_spec
from kiln.core.spec.models import AnalysisMetric, MetricSourceKind, ServiceSpec
from kiln.ports.clock import SystemClock
from kiln.services.analysis import RouterSource
from kiln.services.rollout import RolloutExecutor
from tests.e2e import test_rollout_executor as stories
from tests.e2e.test_rollout_executor import V1, V2, V3, Traffic, World, versions_served
from tests.integration.runtime.conftest import make_provider

pytestmark = pytest.mark.e2e

world = stories.world  # the same rig: process provider, embedded router, in-memory ledger

# The executor stories' spec, with a fresh baseline and a 25% canary (so stable keeps 50%).
SPEC = stories.SPEC.replace(
    "      canary:\n        steps:", "      canary:\n        baseline: fresh\n        steps:"
).replace("setWeight: 50", "setWeight: 25")
assert "baseline: fresh" in SPEC and "setWeight: 25" in SPEC


def spec(error_rate: float = 0.0, window: str = "6s") -> ServiceSpec:
    return load_spec(SPEC.format(error_rate=error_rate, window=window))


class Spy:
    """The router's metric source, noting which release names the judge asked for."""

    def __init__(self, inner: RouterSource) -> None:
        self.inner = inner
        self.asked: list[tuple[str, ...]] = []

    def read(self, releases: Sequence[str], metric: AnalysisMetric) -> Mapping[str, Reading]:
        self.asked.append(tuple(releases))
        return self.inner.read(releases, metric)


def executor(world: World, service: ServiceSpec, spy: Spy | None = None) -> RolloutExecutor:
    built = world.executor(service)
    if spy is None:
        return built
    return RolloutExecutor(
        spec=service,
        desired=world.desired,
        provider=make_provider(world.state_dir, bwrap=None),
        router=world.router,
        recorder=world.ledger,
        clock=SystemClock(),
        launcher=built._launcher,
        actor="test",
        sources={MetricSourceKind.ROUTER: spy},
    )


def watch(world: World, group: str) -> tuple[list[dict[str, int]], list[int], Any]:
    """Every table served while the rollout runs, and the group's request counter."""
    tables: list[dict[str, int]] = []
    counted: list[int] = []

    def on_decision(_: Decision) -> None:
        table = world.router.current()
        if table is not None:
            tables.append({r.name: r.weight for r in table.releases if r.backends})
        figures = world.router.metrics().of(group)
        if figures is not None:
            counted.append(figures.requests)

    return tables, counted, on_decision


def leftovers(world: World, group: str) -> list[str]:
    provider = make_provider(world.state_dir, bwrap=None)
    return [
        i.id.value for i in provider.list({ENVIRONMENT: "prod"}) if i.labels.get(RELEASE) == group
    ]


def first_release(world: World) -> tuple[str, str]:
    """v1 deployed (a first release has no baseline); its id and its baseline group's name."""
    first = executor(world, spec())
    first.start("prod", V1)
    assert first.run("prod", timeout=60).phase is Phase.SUCCEEDED
    v1 = world.desired.environment("prod").stable
    assert v1 is not None
    return v1, fresh.name_for(v1)


def test_a_good_canary_is_judged_against_a_fresh_baseline_that_is_then_removed(
    world: World,
) -> None:
    v1, group = first_release(world)

    spy = Spy(RouterSource(world.router, SystemClock()))
    running = executor(world, spec(), spy)
    tables, counted, on_decision = watch(world, group)
    began = time.monotonic()
    with Traffic(world.router_port) as traffic:
        state = running.start("prod", V2)
        done = running.run("prod", timeout=90, on_decision=on_decision)
    print(f"\nfresh-baseline canary: {done.phase} in {time.monotonic() - began:.1f}s")

    assert done.phase is Phase.SUCCEEDED, done.reason
    assert traffic.failures == [] and traffic.server_errors == 0
    # The group had its own route-table entry at the canary's weight, stable the rest.
    assert {v1: 50, group: 25, state.candidate: 25} in tables
    # ... and its own counters in the router, which is what the judge read.
    assert counted and max(counted) > 0
    assert spy.asked and set(spy.asked) == {(state.candidate, group)}
    verdict = [e for e in world.ledger.events if e["kind"] is EventKind.ANALYSIS_VERDICT][-1]
    assert verdict["details"]["verdict"] == "pass"
    assert verdict["details"]["baseline"] == {"kind": "fresh", "release": group, "instances": 1}
    # Nothing of the group is left: no instance, no route entry.
    assert leftovers(world, group) == []
    table = world.router.current()
    assert table is not None and table.release(group) is None
    assert versions_served(world.router_port) == {"2.0.0"}


def test_a_bad_canary_rolls_back_and_leaves_no_baseline_instance(world: World) -> None:
    v1, group = first_release(world)

    running = executor(world, spec(error_rate=0.3, window="30s"))
    tables, _, on_decision = watch(world, group)
    with Traffic(world.router_port) as traffic:
        running.start("prod", V3)
        done = running.run("prod", timeout=90, on_decision=on_decision)
        time.sleep(0.3)

    assert done.phase is Phase.ROLLED_BACK, done.reason
    assert "evidence" in done.reason  # decided by the judge against the group, not the clock
    assert traffic.failures == []  # the 500s are the app's own answers
    assert any(t.get(group) == 25 for t in tables)
    failed = [e for e in world.ledger.events if e["kind"] is EventKind.ANALYSIS_VERDICT][-1]
    assert failed["details"]["verdict"] == "fail"
    assert failed["details"]["baseline"]["release"] == group
    assert leftovers(world, group) == []
    table = world.router.current()
    assert table is not None and [(r.name, r.weight) for r in table.releases] == [(v1, 100)]
    assert versions_served(world.router_port) == {"1.0.0"}
