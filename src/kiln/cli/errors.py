"""Turning any exception into one clear message and a documented exit code.

Expected failures (``KilnError``) print the message, each problem with its
file:line:column, and a hint. Anything else is a bug: the traceback goes to a file
under ``.kiln/logs/`` (or the temp dir when there is no project here) and the user
is told where, and asked to report it. With ``--output json`` the error is a JSON
document on stdout so scripts never parse prose.

The click context is gone by the time an exception reaches ``handle``, so the few
global flags that shape error output (-f, --state-dir, --no-color, -q, -v) are
read again from the arguments.

This module is imported on every run (``kiln --help`` included), so what only a
failure needs (tempfile, traceback, datetime) is imported when one happens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from kiln.errors import ExitCode, KilnError, SpecError


@dataclass(frozen=True)
class GlobalFlags:
    spec: str = "kiln.yaml"
    state_dir: str | None = None
    plain: bool = False
    verbosity: int = 0
    json: bool = False


_WITH_VALUE = {"-f": "spec", "--spec": "spec", "--state-dir": "state_dir"}


def global_flags(args: list[str], environ: Mapping[str, str] | None = None) -> GlobalFlags:
    """The global options given before the command name, plus their variables."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    plain = bool(env.get("NO_COLOR"))
    verbosity = 0
    index = 0
    while index < len(args):
        arg = args[index]
        name, eq, inline = arg.partition("=")
        if name in _WITH_VALUE:
            if eq:
                values[_WITH_VALUE[name]] = inline
            elif index + 1 < len(args):
                values[_WITH_VALUE[name]] = args[index + 1]
                index += 1
        elif arg == "--no-color":
            plain = True
        elif arg in {"-q", "--quiet"}:
            verbosity = -1
        elif arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            verbosity += 1 if arg == "--verbose" else len(arg) - 1
        elif not arg.startswith("-"):
            break  # the command name: the rest is the command's own
        index += 1
    return GlobalFlags(
        spec=values.get("spec") or env.get("KILN_SPEC") or "kiln.yaml",
        state_dir=values.get("state_dir") or env.get("KILN_STATE_DIR") or None,
        plain=plain,
        verbosity=verbosity,
        json=_wants_json(args, env),
    )


def _wants_json(args: list[str], env: Mapping[str, str]) -> bool:
    for i, arg in enumerate(args):
        if arg in {"-o", "--output"} and i + 1 < len(args) and args[i + 1] == "json":
            return True
        if arg in {"--output=json", "-ojson"}:
            return True
    return env.get("KILN_OUTPUT") == "json"


def handle(exc: BaseException, args: list[str]) -> int:
    flags = global_flags(args)
    if isinstance(exc, click.exceptions.Exit):
        return int(exc.exit_code)
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    if isinstance(exc, click.ClickException):
        if flags.json:
            click.echo(json.dumps({"error": {"kind": "usage", "message": exc.format_message()}}))
        else:
            exc.show()
        return int(ExitCode.INVALID)
    if isinstance(exc, KilnError):
        _report_kiln_error(exc, flags)
        return int(exc.exit_code)
    if isinstance(exc, SystemExit):
        return int(exc.code) if isinstance(exc.code, int) else 1
    return _report_bug(exc, flags)


def _report_kiln_error(exc: KilnError, flags: GlobalFlags) -> None:
    problems = exc.problems if isinstance(exc, SpecError) else []
    if flags.json:
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
    click.secho(
        f"error: {exc.message}",
        fg="red",
        err=True,
        color=False if flags.plain else None,
    )
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    if flags.verbosity >= 2:
        import traceback

        # -vv: the full chain, for someone debugging kiln itself.
        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)


def crash_dir(flags: GlobalFlags) -> Path:
    """Where a crash log goes: the project's state dir, else the temp dir.

    A state directory is created for the log only in a project (a spec exists
    beside it), so a crash in an unrelated directory leaves nothing behind there.
    """
    import tempfile

    from kiln.bootstrap.statedir import ensure_state_dir

    spec = Path(flags.spec)
    state = Path(flags.state_dir) if flags.state_dir else spec.resolve().parent / ".kiln"
    if state.is_dir() or spec.is_file():
        try:
            return ensure_state_dir(state) / "logs"
        except KilnError:
            pass
    return Path(tempfile.gettempdir()) / "kiln-logs"


def _report_bug(exc: BaseException, flags: GlobalFlags) -> int:
    import datetime as _dt
    import traceback

    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = "".join(traceback.format_exception(exc))
    try:
        where = crash_dir(flags)
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = where / f"crash-{stamp}-{os.getpid()}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        saved = str(path)
    except OSError:
        saved = "(could not write the traceback)"
    message = f"internal error: {type(exc).__name__}: {exc}"
    if flags.json:
        click.echo(json.dumps({"error": {"kind": "internal", "message": message, "log": saved}}))
    else:
        click.echo(message, err=True)
        if flags.verbosity >= 2:
            click.echo(text.rstrip(), err=True)
        click.echo(f"the traceback is in {saved}; please report it with that file", err=True)
    return int(ExitCode.INTERNAL)
