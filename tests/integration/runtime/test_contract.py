"""The Provider contract: the in-memory fake and the process provider agree.

Services are unit-tested against ``FakeProvider``; this keeps the fake honest
by running the same story against the real process provider.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.core.runtime.model import Healthy, Instance, InstanceId, State, Unhealthy
from kiln.errors import InvalidInput, NotFound
from kiln.ports.runtime import Provider
from tests.integration.runtime.conftest import hello_spec, make_provider
from tests.unit.runtime.fakes import FakeProvider

pytestmark = pytest.mark.integration


@pytest.fixture(params=["fake", "process"])
def any_provider(request: pytest.FixtureRequest, state_dir: Path) -> Iterator[Provider]:
    if request.param == "fake":
        yield FakeProvider()
    else:
        yield make_provider(state_dir, bwrap=None)


def test_the_provider_contract(any_provider: Provider, tree: Path) -> None:
    spec = hello_spec(tree)
    assert any_provider.create(spec, 0) == []
    with pytest.raises(InvalidInput):
        any_provider.create(spec, -1)
    made = any_provider.create(spec, 2)
    assert len({i.id for i in made}) == 2
    assert all(i.labels == spec.labels(i.id) for i in made)
    ready = any_provider.wait_ready([i.id for i in made], timeout=10)
    assert set(ready) == {i.id for i in made}
    assert all(isinstance(r, Healthy) for r in ready.values())
    assert {i.id for i in any_provider.list(spec.selector())} == {i.id for i in made}
    assert any_provider.list({"dev.kiln.release": "other"}) == []
    assert sorted(any_provider.recover().adopted) == sorted(i.id.value for i in made)

    ended = any_provider.destroy(made[0].id, drain_timeout=2)
    assert ended.instance == made[0].id
    assert [i.id for i in any_provider.list()] == [made[1].id]
    assert all(i.state is State.RUNNING for i in any_provider.list())
    with pytest.raises(NotFound):
        any_provider.destroy(made[0].id, drain_timeout=0)
    with pytest.raises(NotFound):
        any_provider.logs(InstanceId("hello-dev-00000000"))
    assert isinstance(any_provider.health(made[1].id), Healthy)
    any_provider.destroy(made[1].id, drain_timeout=2)
    assert any_provider.list() == []


def test_a_dead_instance_is_unhealthy_and_a_destroyed_one_is_not_found(
    any_provider: Provider, tree: Path
) -> None:
    (instance,) = any_provider.create(hello_spec(tree), 1)
    any_provider.wait_ready([instance.id], timeout=10)
    kill(any_provider, instance)
    assert isinstance(any_provider.health(instance.id), Unhealthy)
    (dead,) = any_provider.list()
    assert dead.state is State.DEAD
    any_provider.destroy(instance.id, drain_timeout=1)
    with pytest.raises(NotFound):
        any_provider.health(instance.id)


def kill(provider: Provider, instance: Instance) -> None:
    """kill -9 for real processes; the fake's own way for the fake."""
    if isinstance(provider, FakeProvider):
        provider.set_state(instance.id, State.DEAD)
        return
    assert instance.pid is not None
    os.kill(instance.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while provider.list()[0].state is not State.DEAD:
        assert time.monotonic() < deadline
        time.sleep(0.02)
