"""Instance use cases: list, read logs, and heal a release back to its desired count.

``heal`` is plan-then-apply: ``kiln.core.runtime.planner.plan`` decides from what
the provider lists and the probe failure counts; this module applies each
action through the ``Provider`` port and records every replacement in the
ledger. A dead or unhealthy instance is never restarted or patched: it is
destroyed and a fresh one is created from the same ``LaunchSpec`` (the same
read-only tree).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kiln.core.ledger.kinds import EventKind
from kiln.core.runtime.model import ENVIRONMENT, Instance, InstanceId, LaunchSpec
from kiln.core.runtime.planner import Action, Create, Ignore, Keep, Remove, Replace, plan
from kiln.ports.ledger import Recorder
from kiln.ports.runtime import Provider


def list_instances(provider: Provider, environment: str | None = None) -> list[Instance]:
    selector = {ENVIRONMENT: environment} if environment else None
    return sorted(provider.list(selector), key=lambda i: (i.labels.get(ENVIRONMENT, ""), i.id))


def read_logs(provider: Provider, instance: str, *, tail: int = 100) -> list[str]:
    return provider.logs(InstanceId(instance), tail=tail)


@dataclass(frozen=True)
class HealReport:
    actions: tuple[Action, ...]
    created: tuple[Instance, ...]


def heal(
    provider: Provider,
    spec: LaunchSpec,
    desired: int,
    *,
    failures: Mapping[InstanceId, int] | None = None,
    failure_threshold: int = 3,
    drain_timeout: float = 0.0,
    recorder: Recorder,
    actor: str = "kiln",
) -> HealReport:
    """Bring ``spec``'s release to ``desired`` live instances by replacement only.

    Dead instances have nothing left to drain; unhealthy ones get
    ``drain_timeout`` (the router has already stopped sending them traffic).
    """
    observed = provider.list(spec.selector())
    actions = plan(desired, observed, failures or {}, failure_threshold=failure_threshold)
    created: list[Instance] = []
    for action in actions:
        if isinstance(action, Keep | Ignore):
            continue
        if isinstance(action, Remove):
            provider.destroy(action.instance, drain_timeout=drain_timeout)
            recorder.record(
                EventKind.DECOMMISSION,
                actor=actor,
                artifact=spec.artifact,
                environment=spec.environment,
                release=spec.release,
                details={"instance": action.instance.value, "reason": action.reason.value},
            )
        elif isinstance(action, Replace):
            provider.destroy(action.instance, drain_timeout=drain_timeout)
            (fresh,) = provider.create(spec, 1)
            created.append(fresh)
            recorder.record(
                EventKind.HEAL,
                actor=actor,
                artifact=spec.artifact,
                environment=spec.environment,
                release=spec.release,
                details={
                    "replaced": action.instance.value,
                    "reason": action.reason.value,
                    "by": fresh.id.value,
                    "provider": provider.name,
                },
            )
        elif isinstance(action, Create):
            fresh_ones = provider.create(spec, action.count)
            created.extend(fresh_ones)
            recorder.record(
                EventKind.HEAL,
                actor=actor,
                artifact=spec.artifact,
                environment=spec.environment,
                release=spec.release,
                details={
                    "created": [i.id.value for i in fresh_ones],
                    "reason": action.reason.value,
                    "provider": provider.name,
                },
            )
    return HealReport(tuple(actions), tuple(created))
