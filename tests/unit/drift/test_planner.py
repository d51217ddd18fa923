"""The drift planner as data: one row per kind of drift, and the no-false-drift rows."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import pytest

from kiln.core.drift.model import (
    DeadInstance,
    Destroy,
    ExtraInstance,
    Impostor,
    MissingInstance,
    Observed,
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
    action_kind,
    finding_kind,
)
from kiln.core.drift.planner import ROLLOUT_NOTE, plan
from kiln.core.runtime.model import State
from tests.unit.drift.builders import A2, C2, R1, R2, desired, inst, table

I1, I2, I3 = inst(1), inst(2), inst(3)
FRESH = Observed([I1, I2], table((R1, 100, [I1, I2])))


def test_a_fresh_deployment_is_clean() -> None:
    result = plan(desired(), FRESH)
    assert result.clean and result.findings == () and result.actions == ()


def test_a_sticky_environment_with_its_cookie_is_clean() -> None:
    result = plan(desired(sticky=True), Observed([I1, I2], table((R1, 100, [I1, I2]), sticky=True)))
    assert result.clean, [f.reason for f in result.findings]


# Each row: (name, desired, observed, finding kinds, action kinds, a fragment of the first reason)
CASES: list[tuple[str, Any, Observed, list[str], list[str], str]] = [
    (
        "missing",
        desired(),
        Observed([I1], table((R1, 100, [I1]))),
        ["missing"],
        ["provision"],
        "declares 2 instances, 1 run",
    ),
    (
        "dead",
        desired(),
        Observed([I1, inst(2, state=State.DEAD)], table((R1, 100, [I1]))),
        ["dead"],
        ["replace"],
        "is dead",
    ),
    (
        "dead and still routed",
        desired(),
        Observed([I1, inst(2, state=State.DEAD)], FRESH.table),
        ["dead", "route"],
        ["replace", "reapply-route"],
        "is dead",
    ),
    (
        "failing its probes",
        desired(),
        Observed([I1, I2], FRESH.table, unhealthy={I2.id.value: "HTTP 500"}),
        ["dead", "route"],
        ["replace", "reapply-route"],
        "failing its readiness probe: HTTP 500",
    ),
    (
        "extra beyond replicas",
        desired(),
        Observed([I1, I2, I3], table((R1, 100, [I1, I2, I3]))),
        ["extra"],
        ["destroy"],
        "beyond the 2 declared replicas",
    ),
    (
        "wrong artifact, same release label",
        desired(),
        Observed([I1, inst(2, artifact=A2)], table((R1, 100, [I1]))),
        ["missing", "wrong-artifact"],
        ["provision", "destroy"],
        "declares 2 instances, 1 run",
    ),
    (
        "wrong config",
        desired(),
        Observed([I1, I2, inst(3, config=C2)], FRESH.table),
        ["wrong-config"],
        ["destroy"],
        f"runs config {C2}",
    ),
    (
        "an old release left running",
        desired(),
        Observed([I1, I2, inst(3, R2)], FRESH.table),
        ["wrong-artifact"],
        ["destroy"],
        f"runs artifact {A2}",
    ),
    (
        "tampered tree",
        desired(),
        Observed([I1, I2], FRESH.table, tampered={R1.artifact: ("app/app.py",)}),
        ["tampered-tree"],
        ["reunpack", "replace", "replace"],
        "differs from the artifact in 1 path(s): app/app.py",
    ),
    (
        "route weight changed",
        desired(),
        Observed([I1, I2, inst(3, R2)], table((R1, 70, [I1, I2]), (R2, 30, [inst(3, R2)]))),
        ["wrong-artifact", "route"],
        ["reapply-route", "destroy"],
        f"runs artifact {A2}",
    ),
    (
        "a ready instance missing from the table",
        desired(),
        Observed([I1, I2], table((R1, 100, [I1]))),
        ["route"],
        ["reapply-route"],
        "ready instances not routed",
    ),
    (
        "a preview rule left behind",
        desired(),
        Observed([I1, I2], table((R1, 100, [I1, I2]), preview=True)),
        ["route"],
        ["reapply-route"],
        "match rule",
    ),
    (
        "a mirror left behind",
        desired(),
        Observed([I1, I2], table((R1, 100, [I1, I2]), mirror=True)),
        ["route"],
        ["reapply-route"],
        "mirrors to",
    ),
    (
        "stickiness declared, the table has none",
        desired(sticky=True),
        Observed([I1, I2], table((R1, 100, [I1, I2]))),
        ["route"],
        ["reapply-route"],
        "stickiness is declared (router.sticky) but the table has none",
    ),
    (
        "a sticky cookie the spec does not declare",
        desired(),
        Observed([I1, I2], table((R1, 100, [I1, I2]), sticky=True)),
        ["route"],
        ["reapply-route"],
        "sticky cookie kiln_release that the spec does not declare",
    ),
    (
        "no table at all",
        desired(),
        Observed([I1, I2], None),
        ["route"],
        ["reapply-route"],
        "the router has no table",
    ),
    (
        "a weight changed on the live data plane (HAProxy)",
        desired(),
        Observed([I1, I2], FRESH.table, data_plane=("server s_x has weight 7, the table gives 1",)),
        ["route"],
        ["reapply-route"],
        "has weight 7, the table gives 1",
    ),
    (
        "impostor",
        desired(),
        Observed([I1, I2, inst(9, state=State.IMPOSTOR)], FRESH.table),
        ["impostor"],
        [],
        "kiln did not create it",
    ),
    (
        "orphan",
        desired(),
        Observed([I1, I2, inst(9, state=State.ORPHAN)], FRESH.table),
        ["orphan"],
        ["destroy"],
        "an orphan",
    ),
    (
        "secret version changed",
        desired(),
        Observed(
            [inst(1, secrets={"DB": 1}), inst(2, secrets={"DB": 2})],
            FRESH.table,
            secrets={"DB": 2},
        ),
        ["secret-version"],
        ["replace"],
        "secret DB version 1, the store now holds version 2",
    ),
    (
        "no declared release but instances and a table",
        desired(None),
        Observed([I1], table((R1, 100, [I1]))),
        ["extra", "route"],
        ["destroy"],
        "declares no release",
    ),
]


@pytest.mark.parametrize(
    ("name", "want", "seen", "kinds", "actions", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_each_kind_of_drift(
    name: str, want: Any, seen: Observed, kinds: list[str], actions: list[str], reason: str
) -> None:
    result = plan(want, seen)
    assert sorted(finding_kind(f) for f in result.findings) == sorted(kinds), name
    assert [action_kind(a) for a in result.actions] == actions, name
    assert reason in result.findings[0].reason, result.findings[0].reason
    assert not result.clean


def test_findings_are_typed_with_their_facts() -> None:
    dead = inst(2, state=State.DEAD)
    result = plan(desired(), Observed([I1, dead], table((R1, 100, [I1]))))
    assert result.findings == (DeadInstance(dead.id.value, R1.id, "dead (exited)"),)
    assert result.actions == (Replace(dead.id.value, R1.id, "dead"),)
    result = plan(desired(replicas=3), Observed([I1, I2], FRESH.table))
    assert result.findings == (MissingInstance(R1.id, 3, 2),)
    assert result.actions == (Provision(R1.id, 1),)
    impostor = inst(9, state=State.IMPOSTOR)
    result = plan(desired(), Observed([I1, I2, impostor], FRESH.table))
    assert isinstance(result.findings[0], Impostor) and not result.findings[0].orphan
    assert result.actions == ()  # kiln never signals what it did not start


def test_tampering_is_healed_by_a_fresh_unpack_then_replacement_of_every_user() -> None:
    result = plan(desired(), Observed([I1, I2], FRESH.table, tampered={R1.artifact: ("x",)}))
    (finding,) = result.findings
    assert isinstance(finding, TamperedTree)
    assert finding.instances == (I1.id.value, I2.id.value)
    assert result.actions[0] == Reunpack(R1.artifact)
    assert {a.instance for a in result.actions if isinstance(a, Replace)} == {
        I1.id.value,
        I2.id.value,
    }


def test_route_drift_names_the_weight_and_the_undeclared_release() -> None:
    old = inst(3, R2)
    result = plan(desired(), Observed([I1, I2], table((R1, 70, [I1, I2]), (R2, 30, [old]))))
    (finding,) = result.findings
    assert isinstance(finding, RouteDrift)
    assert f"release {R1.id} has weight 70, declared 100" in finding.reason
    assert f"routes 30% to undeclared release {R2.id}" in finding.reason
    assert result.actions == (ReapplyRoute(R1.id, None),)


def test_surplus_prefers_destroying_broken_instances_over_replacing_them() -> None:
    dead = inst(3, state=State.DEAD)
    result = plan(desired(), Observed([I1, I2, dead], FRESH.table))
    assert result.actions == (Destroy(dead.id.value, "dead; surplus"),)


def test_actions_start_new_instances_before_routing_before_destroying() -> None:
    seen = Observed(
        [I1, inst(2, state=State.DEAD), inst(3, R2)], table((R1, 50, [I1]), (R2, 50, [inst(3, R2)]))
    )
    kinds = [action_kind(a) for a in plan(desired(), seen).actions]
    assert kinds == ["replace", "reapply-route", "destroy"]


# --- the operator wins --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("want", "why"),
    [(desired(paused=True), "is paused"), (desired(self_heal=False), "selfHeal is off")],
    ids=["paused", "selfHeal false"],
)
def test_reported_not_healed(want: Any, why: str) -> None:
    result = plan(want, Observed([I1], table((R1, 100, [I1]))))
    assert [finding_kind(f) for f in result.findings] == ["missing"]
    (action,) = result.actions
    assert isinstance(action, ReportOnly) and why in action.reason


def test_a_rollout_in_progress_is_left_to_the_rollout_executor() -> None:
    chaos = Observed(
        [inst(1, state=State.DEAD), inst(3, R2)], table((R1, 50, [I1]), (R2, 50, [inst(3, R2)]))
    )
    result = plan(desired(rollout=True), chaos)
    assert result.findings == () and result.actions == () and result.note == ROLLOUT_NOTE
    assert result.clean


def test_a_rollback_changes_the_declared_release_so_healing_follows_it() -> None:
    # After `kiln rollback` the declared release is R2: R1 instances are the drift now.
    old = [inst(5, R2), inst(6, R2)]
    seen = Observed([I1, I2, *old], table((R2, 100, old)))
    result = plan(desired(R2), seen)
    destroyed = {a.instance for a in result.actions if isinstance(a, Destroy)}
    assert destroyed == {I1.id.value, I2.id.value}
    assert not any(isinstance(a, (Provision, Replace, ReapplyRoute)) for a in result.actions)
    assert all(isinstance(f, WrongArtifact) for f in result.findings)


def test_other_environments_and_services_are_not_this_environments_business() -> None:
    other = inst(7, environment="staging")
    result = plan(desired(), Observed([I1, I2, other], FRESH.table))
    assert result.clean


# --- no false drift -----------------------------------------------------------------------

Shuffle = Callable[[Observed, random.Random], Observed]


def _reorder(seen: Observed, rng: random.Random) -> Observed:
    instances = list(seen.instances)
    rng.shuffle(instances)
    assert seen.table is not None
    releases = []
    for release in seen.table.releases:
        backends = list(release.backends)
        rng.shuffle(backends)
        releases.append(dataclasses.replace(release, backends=tuple(backends)))
    rng.shuffle(releases)
    shuffled = dataclasses.replace(
        seen.table, generation=rng.randint(1, 10**6), releases=tuple(releases)
    )
    return Observed(instances, shuffled, secrets={"UNUSED": 3})


def _with_zero_weight_entry(seen: Observed, rng: random.Random) -> Observed:
    assert seen.table is not None
    empty = dataclasses.replace(
        seen.table.releases[0], name="rel-0000000000000000", weight=0, backends=()
    )
    table = dataclasses.replace(seen.table, releases=(*seen.table.releases, empty))
    return Observed(seen.instances, table)


@pytest.mark.parametrize("change", [_reorder, _with_zero_weight_entry])
def test_ordering_generations_and_defaults_never_count(change: Shuffle) -> None:
    rng = random.Random(9)
    many = [inst(n) for n in range(1, 9)]
    seen = Observed(many, table((R1, 100, many)))
    for _ in range(200):
        result = plan(desired(replicas=8), change(seen, rng))
        assert result.clean, [f.reason for f in result.findings]


def test_unpinned_secrets_and_unknown_store_versions_are_not_drift() -> None:
    a, b = inst(1, secrets={"DB": None}), inst(2, secrets={"DB": 4})
    result = plan(desired(), Observed([a, b], table((R1, 100, [a, b])), secrets={"OTHER": 9}))
    assert result.clean


def test_the_json_report_is_plain_data() -> None:
    import json

    result = plan(desired(), Observed([I1, inst(2, state=State.DEAD)], FRESH.table))
    data = json.loads(json.dumps(result.to_json()))
    assert data["clean"] is False
    assert [f["kind"] for f in data["findings"]] == ["dead", "route"]
    assert data["actions"][0] == {
        "kind": "replace",
        "instance": inst(2).id.value,
        "release": R1.id,
        "reason": "dead",
    }
    assert isinstance(plan(desired(), FRESH).to_json()["findings"], list)
    assert ExtraInstance and SecretVersionChanged and WrongConfig  # the public types exist
