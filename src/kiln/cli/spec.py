"""``kiln init``, ``kiln validate``, ``kiln schema``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_format, output_option, to_json

if TYPE_CHECKING:
    from kiln.core.spec.models import Environment


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@output_option
@click.pass_obj
def validate(app: App, path: str | None, output: str | None) -> None:
    """Check kiln.yaml (or PATH) and report every mistake at once.

    Each problem names file:line:column, the field, what was expected and a hint.
    Exits 0 when valid, 2 when not. -v also prints each environment as resolved
    with its defaults.
    """
    from kiln.core.spec.models import dump
    from kiln.services.spec import read_spec

    target = Path(path) if path else app.spec_file
    spec = read_spec(target)

    def human() -> None:
        console = app.console()
        envs = " → ".join(spec.path_order)
        console.print(f"{target}: valid · service [bold]{spec.service}[/] · {envs}")
        if app.verbosity >= 1:
            for env in spec.environments:
                console.print(f"  {env.name}: {_describe(env)}")

    emit(
        app,
        output_format(app, output),
        {"valid": True, "file": str(target), "spec": dump(spec)},
        human,
    )


def _describe(env: Environment) -> str:
    from kiln.core.spec.durations import format_duration

    if env.strategy.canary is not None:
        steps = []
        for step in env.strategy.canary.steps:
            if step.set_weight is not None:
                steps.append(f"{step.set_weight}%")
            elif step.pause is not None:
                wait = step.pause.duration
                steps.append("pause " + (format_duration(wait) if wait is not None else "∞"))
            elif step.analysis is not None:
                steps.append(f"analysis {format_duration(step.analysis.duration)}")
        strategy = "canary " + ", ".join(steps)
    else:
        strategy = "blue-green"
    gates = ", ".join(str(g) for g in env.gates)
    where = f"{env.runtime.provider} behind the {env.router.kind} router"
    return f"{env.replicas} replica(s) on {where} · {strategy} · gates {gates}"


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
    if found.lock_note:
        console.print(f"  note: {found.lock_note}")
    entry = " ".join(found.entry_point) if found.entry_point else "python app.py (a guess)"
    console.print(f"  entry point:  {entry}")
    console.print("next: `kiln validate`, then `kiln build`")
