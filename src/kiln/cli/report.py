"""``kiln report dora``: DORA's four keys per environment, as a table or JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_format, output_option


@click.group()
def report() -> None:
    """Reports computed from the ledger."""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@report.command()
@click.option("--env", "environment", default="prod", show_default=True, help="Environment.")
@click.option("--since", default="30d", show_default=True, help='Window start ("30d", ISO-8601).')
@click.option("--until", default="now", show_default=True, help="Window end (exclusive).")
@output_option
@click.pass_obj
def dora(app: App, environment: str, since: str, until: str, output: str | None) -> None:
    """Deployment frequency, lead time, change failure rate, time to restore."""
    from kiln.bootstrap.ledger import open_ledger
    from kiln.core.ledger.when import parse_when
    from kiln.services import report as svc

    fmt = output_format(app, output)
    now = datetime.now(UTC)
    start = parse_when(since, now=now)
    end = parse_when(until, now=now)
    ledger = open_ledger(app.state_dir())
    try:
        result = svc.dora(ledger.store, environment=environment, since=start, until=end)
    finally:
        ledger.close()
    data = svc.dora_json(result)

    def human() -> None:
        from rich.table import Table

        f = result
        rate = f.change_failure_rate.value
        table = Table("metric", "value", "band", "samples", box=None)
        freq = f.deployment_frequency
        table.add_row("deployment frequency", f"{freq.value:.2f}/day", freq.band, str(freq.samples))
        table.add_row(
            "lead time for changes",
            _duration(f.lead_time.value),
            f.lead_time.band,
            str(f.lead_time.samples),
        )
        table.add_row(
            "change failure rate",
            "-" if rate is None else f"{rate:.0%}",
            f.change_failure_rate.band,
            f"{f.failed_deployments}/{f.deployments}",
        )
        table.add_row(
            "time to restore",
            _duration(f.time_to_restore.value),
            f.time_to_restore.band,
            str(f.time_to_restore.samples),
        )
        app.console().print(
            f"DORA for {environment}, {f.since:%Y-%m-%d %H:%M} to {f.until:%Y-%m-%d %H:%M} UTC"
        )
        app.console().print(table)

    emit(app, fmt, data, human)
