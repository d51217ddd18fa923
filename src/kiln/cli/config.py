"""``kiln config`` (settings and their origins) and ``kiln completion``."""

from __future__ import annotations

import click
from click.core import ParameterSource

from kiln.cli.context import App
from kiln.cli.render import emit, output_option


@click.command()
@output_option
@click.pass_context
def config(ctx: click.Context, output: str | None) -> None:
    """Show each setting, its value, and where it came from.

    Precedence: flags, then KILN_* variables, then kiln.yaml, then defaults.
    """
    from kiln.core.settings import SETTINGS

    app: App = ctx.obj
    # click fills --output from KILN_OUTPUT too; only a typed flag counts as a flag,
    # so the variable is reported with its true origin.
    typed = ctx.get_parameter_source("output") is ParameterSource.COMMANDLINE
    settings = app.settings(output=output if typed else None)
    rows = [
        {
            "name": s.name,
            "value": settings.values[s.name].value,
            "origin": str(settings.values[s.name].origin),
            "env": s.env,
        }
        for s in SETTINGS
    ]

    def human() -> None:
        from rich.table import Table

        table = Table("setting", "value", "from", "variable", box=None)
        for row in rows:
            table.add_row(row["name"], str(row["value"] or "-"), row["origin"], row["env"])
        app.console().print(table)
        app.console().print(f"state directory: {settings.state_dir}")

    data = {"settings": rows, "stateDir": str(settings.state_dir), "spec": str(app.spec_file)}
    emit(app, settings.get("output"), data, human)


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print a completion script: eval "$(kiln completion bash)"."""
    from click.shell_completion import get_completion_class

    from kiln.cli.main import cli

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"unsupported shell {shell}")
    click.echo(cls(cli, {}, "kiln", "_KILN_COMPLETE").source())
