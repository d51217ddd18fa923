"""``kiln config`` (settings and their origins) and ``kiln completion``."""

from __future__ import annotations

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option


@click.command()
@output_option
@click.pass_obj
def config(app: App, output: str | None) -> None:
    """Show each setting, its value, and where it came from.

    Precedence: flags, then KILN_* variables, then kiln.yaml, then defaults.
    """
    from kiln.core.settings import SETTINGS

    settings = app.settings(output=output)
    rows = [
        {
            "name": s.name,
            "value": settings.values[s.name].value,
            "origin": str(settings.values[s.name].origin),
            "env": s.env,
        }
        for s in SETTINGS
    ]
    fmt = settings.get("output") or "text"

    def human() -> None:
        from rich.table import Table

        table = Table("setting", "value", "from", "variable", box=None)
        for row in rows:
            table.add_row(row["name"], str(row["value"] or "-"), row["origin"], row["env"])
        app.console().print(table)
        app.console().print(f"state directory: {settings.state_dir}")

    emit(app, fmt, {"settings": rows, "stateDir": str(settings.state_dir)}, human)


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
