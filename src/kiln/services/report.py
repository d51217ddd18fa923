"""Reports computed from the ledger: DORA's four keys per environment.

Reads only the events of the environment asked for (the store filters with an
index), then hands them to the pure ``kiln.core.insights.dora``. Failures that
began before the window are read too, so a rollback detected in the window of a
deployment started just before it is still matched (``docs/dora.md``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kiln.core.insights.dora import DoraReport, compute
from kiln.core.ledger.kinds import EventKind
from kiln.ports.ledger import EventLog

DORA_KINDS = (
    EventKind.DEPLOY_START,
    EventKind.DEPLOY_COMPLETE,
    EventKind.ROLLBACK,
    EventKind.INCIDENT,
)


def dora(events: EventLog, *, environment: str, since: datetime, until: datetime) -> DoraReport:
    relevant = events.query(environment=environment, kinds=DORA_KINDS)
    return compute(relevant, environment=environment, since=since, until=until)


def dora_json(result: DoraReport) -> dict[str, Any]:
    """The report as ``kiln report dora -o json`` and the dashboard show it."""
    figures = {
        "deploymentFrequency": result.deployment_frequency,
        "leadTime": result.lead_time,
        "changeFailureRate": result.change_failure_rate,
        "timeToRestore": result.time_to_restore,
    }
    return {
        "environment": result.environment,
        "since": result.since.isoformat(),
        "until": result.until.isoformat(),
        "deployments": result.deployments,
        "failedDeployments": result.failed_deployments,
        "openIncidents": result.open_incidents,
        **{
            name: {"value": f.value, "unit": f.unit, "band": str(f.band), "samples": f.samples}
            for name, f in figures.items()
        },
    }
