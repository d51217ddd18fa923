"""Which instances of a release to keep, replace, create or remove.

``plan(desired, observed, failures)`` is pure: (desired count, what the
provider lists, consecutive probe failures) → typed actions, each with its
reason, including the reason for every instance left alone. The executor
(``kiln.services.instances``) applies them. An instance is never repaired:
dead and unhealthy instances are replaced by fresh ones from the same spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kiln.core.runtime.model import Instance, InstanceId, State


class Reason(StrEnum):
    DEAD = "dead"
    UNHEALTHY = "unhealthy"
    MISSING = "missing"
    SURPLUS = "surplus"
    ORPHAN = "orphan"
    IMPOSTOR = "impostor"
    HEALTHY = "healthy"
    STARTING = "starting"


@dataclass(frozen=True)
class Keep:
    instance: InstanceId
    reason: Reason


@dataclass(frozen=True)
class Replace:
    instance: InstanceId
    reason: Reason


@dataclass(frozen=True)
class Create:
    count: int
    reason: Reason = Reason.MISSING


@dataclass(frozen=True)
class Remove:
    instance: InstanceId
    reason: Reason


@dataclass(frozen=True)
class Ignore:
    """Neither counted nor touched (an impostor: kiln did not start it)."""

    instance: InstanceId
    reason: Reason


Action = Keep | Replace | Create | Remove | Ignore


def plan(
    desired: int,
    observed: Sequence[Instance],
    failures: Mapping[InstanceId, int],
    *,
    failure_threshold: int = 3,
) -> list[Action]:
    """Actions that bring ``observed`` (one release's instances) to ``desired`` healthy ones.

    ``failures`` counts consecutive failed probes per instance; an instance with
    no entry has not been probed yet and counts as starting. Replacements come
    before surplus is removed, and surplus removes the newest instances first so
    the ones that have served longest stay.
    """
    if desired < 0:
        raise ValueError("desired must be >= 0")
    actions: list[Action] = []
    alive: list[Instance] = []
    for instance in sorted(observed, key=lambda i: (i.created, i.id)):
        if instance.state is State.IMPOSTOR:
            actions.append(Ignore(instance.id, Reason.IMPOSTOR))
        elif instance.state is State.ORPHAN:
            actions.append(Remove(instance.id, Reason.ORPHAN))
        elif instance.state is State.DEAD:
            actions.append(Replace(instance.id, Reason.DEAD))
        elif failures.get(instance.id, 0) >= failure_threshold:
            actions.append(Replace(instance.id, Reason.UNHEALTHY))
        else:
            alive.append(instance)
    replaced = sum(isinstance(a, Replace) for a in actions)
    surplus = max(0, len(alive) + replaced - desired)
    # Fewer replacements when there are too many instances anyway.
    if surplus:
        trimmed: list[Action] = []
        for action in actions:
            if isinstance(action, Replace) and surplus:
                trimmed.append(Remove(action.instance, action.reason))
                surplus -= 1
            else:
                trimmed.append(action)
        actions = trimmed
    for instance in alive[::-1][:surplus]:
        actions.append(Remove(instance.id, Reason.SURPLUS))
    removed = {a.instance for a in actions if isinstance(a, Remove)}
    for instance in alive:
        if instance.id in removed:
            continue
        count = failures.get(instance.id)
        if count is None:
            reason = Reason.STARTING
        elif count:
            reason = Reason.UNHEALTHY  # failing, but not yet failure_threshold times in a row
        else:
            reason = Reason.HEALTHY
        actions.append(Keep(instance.id, reason))
    kept = sum(isinstance(a, Keep) for a in actions)
    replacing = sum(isinstance(a, Replace) for a in actions)
    missing = desired - kept - replacing
    if missing > 0:
        actions.append(Create(missing))
    return actions
