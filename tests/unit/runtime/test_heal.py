"""Healing a release by replacement, against the in-memory provider."""

from __future__ import annotations

from typing import Any

from kiln.core.ledger.kinds import EventKind
from kiln.core.runtime.model import LaunchSpec, State
from kiln.ports.runtime import Provider
from kiln.services.instances import heal, list_instances
from tests.unit.runtime.fakes import SPEC, FakeProvider


class Ledger:
    def __init__(self) -> None:
        self.events: list[tuple[EventKind, dict[str, Any]]] = []

    def record(self, kind: EventKind, *, actor: str, **fields: Any) -> int:
        assert actor and isinstance(kind, EventKind)
        self.events.append((kind, fields))
        return len(self.events)


def test_the_fake_is_a_provider() -> None:
    provider: Provider = FakeProvider()
    assert provider.name == "fake"


def test_missing_instances_are_created() -> None:
    provider, ledger = FakeProvider(), Ledger()
    report = heal(provider, SPEC, 3, recorder=ledger)
    assert len(report.created) == 3
    assert [kind for kind, _ in ledger.events] == [EventKind.HEAL]


def test_a_dead_instance_is_destroyed_and_replaced_from_the_same_spec() -> None:
    provider, ledger = FakeProvider(), Ledger()
    first, second = provider.create(SPEC, 2)
    provider.set_state(first.id, State.DEAD)
    report = heal(provider, SPEC, 2, recorder=ledger, drain_timeout=0)
    (fresh,) = report.created
    assert provider.destroyed == [(first.id, 0)]
    assert provider.specs[fresh.id] is SPEC
    assert {i.id for i in provider.list()} == {second.id, fresh.id}
    ((kind, fields),) = ledger.events
    assert kind is EventKind.HEAL
    assert fields["details"]["replaced"] == first.id.value
    assert fields["details"]["reason"] == "dead"


def test_an_instance_failing_its_probe_threshold_times_is_replaced() -> None:
    provider, ledger = FakeProvider(), Ledger()
    first, second = provider.create(SPEC, 2)
    heal(provider, SPEC, 2, failures={first.id: 3, second.id: 1}, recorder=ledger)
    ids = {i.id for i in provider.list()}
    assert first.id not in ids and second.id in ids and len(ids) == 2


def test_orphans_are_removed_and_recorded_as_decommissions() -> None:
    provider, ledger = FakeProvider(), Ledger()
    (orphan,) = provider.create(SPEC, 1)
    provider.set_state(orphan.id, State.ORPHAN)
    heal(provider, SPEC, 1, recorder=ledger)
    assert [kind for kind, _ in ledger.events] == [EventKind.DECOMMISSION, EventKind.HEAL]
    assert [i.state for i in provider.list()] == [State.RUNNING]


def test_other_releases_are_left_alone() -> None:
    provider, ledger = FakeProvider(), Ledger()
    other = LaunchSpec(**{**SPEC.__dict__, "release": "r0"})
    (old,) = provider.create(other, 1)
    heal(provider, SPEC, 1, recorder=ledger)
    assert old.id in {i.id for i in provider.list()}
    assert len(list_instances(provider, "dev")) == 2
    assert list_instances(provider, "prod") == []
