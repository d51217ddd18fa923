"""Turning any exception into one clear message and a documented exit code.

Expected failures (``KilnError``) print the message, each problem with its
file:line:column, and a hint. Anything else is a bug: the traceback goes to a file
under ``.kiln/logs/`` (or the temp dir when there is no state dir) and the user is
told where, and asked to report it. With ``--output json`` the error is a JSON
document on stdout so scripts never parse prose.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import click

from kiln.errors import ExitCode, KilnError, SpecError


def _wants_json(args: list[str]) -> bool:
    for i, arg in enumerate(args):
        if arg in {"-o", "--output"} and i + 1 < len(args) and args[i + 1] == "json":
            return True
        if arg == "--output=json":
            return True
    return os.environ.get("KILN_OUTPUT") == "json"


def _plain() -> bool:
    return bool(os.environ.get("NO_COLOR")) or "--no-color" in sys.argv


def handle(exc: BaseException, args: list[str]) -> int:
    as_json = _wants_json(args)
    if isinstance(exc, click.exceptions.Exit):
        return int(exc.exit_code)
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    if isinstance(exc, click.ClickException):
        if as_json:
            click.echo(json.dumps({"error": {"kind": "usage", "message": exc.format_message()}}))
        else:
            exc.show()
        return int(ExitCode.INVALID)
    if isinstance(exc, KilnError):
        _report_kiln_error(exc, as_json=as_json)
        return int(exc.exit_code)
    if isinstance(exc, SystemExit):
        return int(exc.code) if isinstance(exc.code, int) else 1
    return _report_bug(exc, as_json=as_json)


def _report_kiln_error(exc: KilnError, *, as_json: bool) -> None:
    problems = exc.problems if isinstance(exc, SpecError) else []
    if as_json:
        payload = {
            "error": {
                "kind": type(exc).__name__,
                "message": exc.message,
                "hint": exc.hint,
                "problems": [
                    {
                        "file": p.file,
                        "line": p.line,
                        "column": p.column,
                        "path": p.path,
                        "message": p.message,
                        "expected": p.expected,
                        "hint": p.hint,
                    }
                    for p in problems
                ],
            }
        }
        click.echo(json.dumps(payload, indent=2))
        return
    for problem in problems:
        click.echo(problem.render(), err=True)
    click.secho(f"error: {exc.message}", fg=None if _plain() else "red", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)


def _crash_dir() -> Path:
    state = os.environ.get("KILN_STATE_DIR")
    base = Path(state) if state else Path(".kiln")
    if base.is_dir():
        return base / "logs"
    return Path(tempfile.gettempdir()) / "kiln-logs"


def _report_bug(exc: BaseException, *, as_json: bool) -> int:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    where = _crash_dir()
    path = where / f"crash-{stamp}-{os.getpid()}.log"
    try:
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        saved = str(path)
    except OSError:
        saved = "(could not write the traceback)"
    message = f"internal error: {type(exc).__name__}: {exc}"
    if as_json:
        click.echo(json.dumps({"error": {"kind": "internal", "message": message, "log": saved}}))
    else:
        click.echo(message, err=True)
        click.echo(f"the traceback is in {saved}; please report it with that file", err=True)
    return int(ExitCode.INTERNAL)
