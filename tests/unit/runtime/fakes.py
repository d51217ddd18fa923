"""An in-memory ``Provider`` that checks its own contract, for unit tests of services."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from kiln.core.runtime.adoption import Recovery
from kiln.core.runtime.model import (
    Decommissioned,
    HealthResult,
    Healthy,
    Instance,
    InstanceId,
    LaunchSpec,
    State,
    Unhealthy,
    matches,
)
from kiln.errors import InvalidInput, NotFound

#: A launch spec of the hello example, for tests that need one and no tree.
SPEC = LaunchSpec(
    service="hello",
    environment="dev",
    release="r1",
    artifact="sha256:" + "a" * 64,
    config_digest="sha256:" + "c" * 64,
    root=Path("/t"),
    command=("python", "app.py"),
)


class FakeProvider:
    name = "fake"

    def __init__(self) -> None:
        self.instances: dict[InstanceId, Instance] = {}
        self.specs: dict[InstanceId, LaunchSpec] = {}
        self.destroyed: list[tuple[InstanceId, float]] = []
        self._serial = 0

    def create(self, spec: LaunchSpec, count: int) -> builtins.list[Instance]:
        if count < 0:
            raise InvalidInput("count must be >= 0")
        made = []
        for _ in range(count):
            self._serial += 1
            instance = InstanceId.new(spec.service, spec.environment, f"{self._serial:08x}")
            assert instance not in self.instances, "ids are never reused"
            made.append(
                Instance(
                    id=instance,
                    state=State.RUNNING,
                    labels=spec.labels(instance),
                    port=20000 + self._serial,
                    created=f"{self._serial:08d}",
                )
            )
            self.instances[instance] = made[-1]
            self.specs[instance] = spec
        return made

    def destroy(self, instance: InstanceId, *, drain_timeout: float) -> Decommissioned:
        assert drain_timeout >= 0
        if instance not in self.instances:
            raise NotFound(f"no instance {instance}")
        del self.instances[instance]
        self.destroyed.append((instance, drain_timeout))
        return Decommissioned(instance, True, 0.0, 0)

    def list(self, selector: Mapping[str, str] | None = None) -> builtins.list[Instance]:
        return [i for i in self.instances.values() if matches(i.labels, selector or {})]

    def health(self, instance: InstanceId, *, timeout: float = 1.0) -> HealthResult:
        current = self.instances.get(instance)
        if current is None:
            raise NotFound(f"no instance {instance}")
        if current.state is not State.RUNNING:
            return Unhealthy(instance, "not running")
        return Healthy(instance, 200, 0.001)

    def wait_ready(
        self, instances: Sequence[InstanceId], *, timeout: float, interval: float = 0.02
    ) -> dict[InstanceId, HealthResult]:
        assert timeout > 0 and interval > 0
        return {i: self.health(i) for i in instances}  # raises NotFound like the real ones

    def recover(self, *, drain_timeout: float = 2.0) -> Recovery:
        alive = [i.id.value for i in self.instances.values() if i.state is State.RUNNING]
        return Recovery(tuple(sorted(alive)), (), ())

    def logs(self, instance: InstanceId, *, tail: int = 100) -> builtins.list[str]:
        if instance not in self.instances:
            raise NotFound(f"no logs for instance {instance}")
        return []

    # --- test helpers ---

    def set_state(self, instance: InstanceId, state: State) -> None:
        self.instances[instance] = dataclasses.replace(self.instances[instance], state=state)
