"""Rendering for every command: human text through rich, or ``--output json``.

Read commands take ``@output_option``; ``emit`` prints JSON (stable keys, no
colour, one document on stdout) or calls the human renderer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kiln.cli.context import App

F = TypeVar("F", bound=Callable[..., Any])


def output_option(func: F) -> F:
    decorated: F = click.option(
        "-o",
        "--output",
        type=click.Choice(["text", "json"]),
        envvar="KILN_OUTPUT",
        default=None,
        help="Output format [KILN_OUTPUT; default text].",
    )(func)
    return decorated


def output_format(app: App, output: str | None) -> str:
    fmt = app.settings(output=output).get("output") if app.spec_file.exists() else output
    return fmt or "text"


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def emit(app: App, fmt: str, data: Any, human: Callable[[], None]) -> None:
    if fmt == "json":
        click.echo(to_json(data))
    else:
        human()
