"""``kiln secrets set NAME`` (value on stdin) and ``kiln secrets list``.

The value is read from stdin, never from the command line: argv is visible to
every local user in /proc and lands in shell history.
"""

from __future__ import annotations

import sys

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_format, output_option


@click.group()
def secrets() -> None:
    """Versioned, encrypted secrets for instances' environments."""


@secrets.command("set")
@click.argument("name")
@click.pass_obj
def set_command(app: App, name: str) -> None:
    """Store a new version of NAME; the value is read from stdin.

    One trailing newline is dropped (``echo`` adds one). On a terminal the value
    is prompted for without echo.
    """
    from kiln.bootstrap.runtime import secret_store
    from kiln.ports.secrets import SecretValue
    from kiln.services.secrets import set_secret

    if sys.stdin.isatty():
        raw = click.prompt("value", hide_input=True, err=True)
    else:
        raw = sys.stdin.read()
    value = SecretValue(raw.removesuffix("\n").removesuffix("\r"))
    stored = set_secret(secret_store(app.state_dir()), name, value)
    app.console().print(f"stored {stored.name} version {stored.version}")


@secrets.command("list")
@output_option
@click.pass_obj
def list_command(app: App, output: str | None) -> None:
    """Secret names and their versions (never values)."""
    from kiln.bootstrap.runtime import secret_store
    from kiln.services.secrets import list_secrets

    infos = list_secrets(secret_store(app.state_dir()))
    data = {
        "secrets": [
            {"name": i.name, "versions": list(i.versions), "latest": i.latest, "updated": i.updated}
            for i in infos
        ]
    }

    def human() -> None:
        if not infos:
            app.console().print("no secrets")
            return
        for info in infos:
            app.console().print(f"{info.name}  v{info.latest}  ({len(info.versions)} versions)")

    emit(app, output_format(app, output), data, human)
