"""Rendering for every command: human text through rich, or ``--output json``.

Read commands take ``@output_option``; ``emit`` prints JSON (stable keys, no
colour, one document on stdout) or calls the human renderer.
"""

from __future__ import annotations

import json
import os
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
    """The format for this command: the flag, else KILN_OUTPUT, else text.

    ``output`` is not a kiln.yaml setting, so the spec is not read for it.
    """
    from kiln.core.settings import resolve

    settings = resolve(flags={"output": output}, environ=os.environ, spec={}, spec_dir=app.spec_dir)
    return settings.get("output") or "text"


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def emit(app: App, fmt: str | None, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON for ``--output json``; otherwise run the human renderer."""
    if fmt == "json":
        click.echo(to_json(data))
    else:
        human()
