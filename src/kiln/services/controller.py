"""The controller's own state: who leads which environment, since when, serving what.

Rollout workers, the reconciler and runtime supervision attach here as they land
(issues 7 and 9); today the controller owns leadership and reports its status.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kiln import __version__
from kiln.core.spec.models import ServiceSpec
from kiln.ports.clock import Clock
from kiln.ports.leader import LeaderLock


@dataclass
class Controller:
    spec: ServiceSpec | None
    leader: LeaderLock
    clock: Clock
    address: str
    started: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock.now()

    def claim_environments(self) -> list[str]:
        """Try to lead every environment of the spec; return the ones we lead."""
        if self.spec is None:
            return []
        return [e.name for e in self.spec.environments if self.leader.try_acquire(e.name)]

    def status(self) -> dict[str, Any]:
        envs = [e.name for e in self.spec.environments] if self.spec else []
        held = self.leader.held()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "address": self.address,
            "started": self.started.isoformat(),
            "service": self.spec.service if self.spec else None,
            "environments": [{"name": name, "leader": name in held} for name in envs],
        }
