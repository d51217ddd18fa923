"""``kiln init``, ``kiln validate``, ``kiln schema``."""

from __future__ import annotations

from pathlib import Path

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option, to_json


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@output_option
@click.pass_obj
def validate(app: App, path: str | None, output: str | None) -> None:
    """Check kiln.yaml (or PATH) and report every mistake at once.

    Each problem names file:line:column, the field, what was expected and a hint.
    Exits 0 when valid, 2 when not.
    """
    from kiln.core.spec.models import dump
    from kiln.services.spec import read_spec

    target = Path(path) if path else app.spec_file
    spec = read_spec(target)
    fmt = output or "text"

    def human() -> None:
        envs = " → ".join(spec.path_order)
        app.console().print(f"{target}: valid · service [bold]{spec.service}[/] · {envs}")

    emit(app, fmt, {"valid": True, "file": str(target), "spec": dump(spec)}, human)


@click.command()
@click.pass_obj
def schema(app: App) -> None:
    """Print the JSON Schema (draft 2020-12) of kiln.yaml, for editors."""
    from kiln.services.spec import schema as build

    click.echo(to_json(build()))


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, exists=True),
    default=".",
    help="The app's directory.",
)
@click.pass_obj
def init(app: App, directory: str) -> None:
    """Write a commented kiln.yaml for the app in this directory.

    Detects a requirements or lock file and a likely entry point. Never
    overwrites an existing spec.
    """
    from kiln.services.spec import init as scaffold

    result = scaffold(Path(directory))
    console = app.console()
    console.print(f"wrote {result.path}")
    found = result.detected
    console.print(f"  dependencies: {found.requirements or 'none found'}")
    console.print(f"  entry point:  {' '.join(found.entry_point or ['python', 'app.py'])}")
    console.print("next: `kiln validate`, then `kiln build`")
