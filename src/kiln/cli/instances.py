"""``kiln instances list`` and ``kiln instances logs``."""

from __future__ import annotations

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_format, output_option

_PROVIDER = click.option(
    "--provider",
    "provider_kind",
    type=click.Choice(["process", "podman"]),
    default=None,
    help="Which runtime to ask [default: the environment's runtime.provider, else process].",
)


def _kind(app: App, environment: str | None, chosen: str | None) -> str:
    if chosen:
        return chosen
    if environment and app.spec_file.exists():
        from kiln.errors import NotFound

        try:
            return app.spec().environment(environment).runtime.provider.value
        except KeyError:
            raise NotFound(
                f"{app.spec_file} has no environment {environment!r}",
                hint="the environments are: " + ", ".join(e.name for e in app.spec().environments),
            ) from None
    return "process"


@click.group()
def instances() -> None:
    """Running instances: what runs, where, and what it printed."""


@instances.command("list")
@click.argument("environment", required=False)
@_PROVIDER
@output_option
@click.pass_obj
def list_command(
    app: App, environment: str | None, provider_kind: str | None, output: str | None
) -> None:
    """List instances (all environments, or ENVIRONMENT's), dead and orphan ones included.

    Secrets appear by name and version only.
    """
    from kiln.bootstrap.runtime import provider
    from kiln.services.instances import list_instances

    kind = _kind(app, environment, provider_kind)
    found = list_instances(provider(kind, app.state_dir()), environment)
    data = {"instances": [i.summary() for i in found]}

    def human() -> None:
        from rich.table import Table

        if not found:
            app.console().print("no instances")
            return
        table = Table(box=None, pad_edge=False)
        for column in ("INSTANCE", "STATE", "ADDRESS", "RELEASE", "PID", "DETAIL"):
            table.add_column(column)
        for i in found:
            table.add_row(
                i.id.value,
                i.state.value,
                i.address if i.port else "-",
                i.release or "-",
                str(i.pid or "-"),
                i.detail,
            )
        app.console().print(table)

    emit(app, output_format(app, output), data, human)


@instances.command("logs")
@click.argument("instance")
@click.option("-n", "--tail", default=100, show_default=True, help="Lines from the end.")
@_PROVIDER
@click.pass_obj
def logs_command(app: App, instance: str, tail: int, provider_kind: str | None) -> None:
    """Print the last lines INSTANCE wrote to stdout and stderr (across rotated files)."""
    from kiln.bootstrap.runtime import provider
    from kiln.services.instances import read_logs

    kind = provider_kind or "process"
    for line in read_logs(provider(kind, app.state_dir()), instance, tail=tail):
        click.echo(line)
