"""The ``Provider`` port: fresh instances of a release, and nothing else.

A provider creates instances from a ``LaunchSpec`` (never patching an existing
one), destroys them gracefully, lists what really runs (including kiln-labelled
leftovers it does not own, reported as ``orphan``), probes readiness and reads
logs. Stopping traffic to an instance is the router's job and happens before
``destroy``; the provider then sends SIGTERM, waits up to ``drain_timeout`` for
in-flight work to finish, and kills what is left.

Implementations: ``kiln.adapters.runtime.process`` (default) and
``kiln.adapters.runtime.podman``.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Protocol

from kiln.core.runtime.adoption import Recovery
from kiln.core.runtime.model import (
    Decommissioned,
    HealthResult,
    Instance,
    InstanceId,
    LaunchSpec,
)


class Provider(Protocol):
    @property
    def name(self) -> str:
        """``process``, ``podman``, ...; shown to users and recorded."""
        ...

    def create(self, spec: LaunchSpec, count: int) -> list[Instance]:
        """Start ``count`` fresh instances; return them as soon as they are started.

        Readiness is ``wait_ready``'s business. On failure nothing half-made is
        left behind: instances already started by this call are destroyed.
        """
        ...

    def destroy(self, instance: InstanceId, *, drain_timeout: float) -> Decommissioned:
        """SIGTERM, wait up to ``drain_timeout`` seconds, then kill; remove its scratch."""
        ...

    def list(self, selector: Mapping[str, str] | None = None) -> list[Instance]:
        """Observed instances whose labels match ``selector`` (all when None)."""
        ...

    def health(self, instance: InstanceId, *, timeout: float = 1.0) -> HealthResult:
        """One HTTP readiness probe of the instance's health path.

        ``Unhealthy`` for a known instance that fails (or is dead); ``NotFound``
        for an instance the provider does not know (never created, or destroyed).
        """
        ...

    def wait_ready(
        self, instances: Sequence[InstanceId], *, timeout: float, interval: float = 0.02
    ) -> dict[InstanceId, HealthResult]:
        """Probe every ``interval`` seconds until each is healthy or ``timeout`` passes.

        Returns the last result per instance. A dead instance stops being polled
        at once (its result is ``Unhealthy``), so a crash costs no timeout.
        """
        ...

    def recover(self, *, drain_timeout: float = 2.0) -> Recovery:
        """Run once when a controller starts: adopt live instances, forget dead
        ones' records, reap orphans of this provider."""
        ...

    def logs(self, instance: InstanceId, *, tail: int = 100) -> builtins.list[str]:
        """The last ``tail`` lines the instance wrote to stdout and stderr."""
        ...
