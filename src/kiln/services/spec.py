"""Spec use cases: read and validate ``kiln.yaml``, print its schema, scaffold one."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.core.spec.loader import MAX_SPEC_BYTES, load_spec
from kiln.core.spec.models import ServiceSpec
from kiln.core.spec.scaffold import Detected, render
from kiln.core.spec.schema import json_schema
from kiln.errors import NotFound, Problem, Refused, SpecError


def read_spec(path: Path) -> ServiceSpec:
    """Read and validate one spec file; every failure is a ``KilnError``."""
    name = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(
            f"{name} does not exist",
            hint="run `kiln init` to create one, or pass the path with -f",
        ) from None
    except IsADirectoryError:
        raise NotFound(f"{name} is a directory", hint="pass the path of kiln.yaml itself") from None
    except OSError as exc:
        raise SpecError(
            [Problem(f"cannot read the file: {exc.strerror}", file=name)], source=name
        ) from None
    return load_spec(data, source=name)


def schema() -> dict[str, Any]:
    return json_schema()


@dataclass(frozen=True)
class InitResult:
    path: Path
    detected: Detected


# Files in pip's requirements format, best first: build.requirements reads them.
_REQUIREMENT_FILES = ("requirements.lock", "requirements.txt")
# Locks in other formats, and the command that exports each to requirements format.
_FOREIGN_LOCKS = (
    ("uv.lock", "uv export --format requirements-txt --output-file requirements.txt"),
    ("poetry.lock", "poetry export --format requirements.txt --output requirements.txt"),
    ("Pipfile.lock", "pipenv requirements --hash > requirements.txt"),
    ("pylock.toml", "export it to requirements.txt with your installer"),
)
_ENTRY_FILES = ("app.py", "main.py", "server.py", "wsgi.py", "asgi.py", "manage.py")


def detect(directory: Path) -> Detected:
    """Look for dependencies and an entry point; never fails, only finds less."""
    requirements = next((f for f in _REQUIREMENT_FILES if (directory / f).is_file()), None)
    lock_note = None
    if requirements is None:
        for name, export in _FOREIGN_LOCKS:
            if (directory / name).is_file():
                lock_note = f"{name} found: export it with `{export}`"
                break
    entry: list[str] | None = None
    for candidate in _ENTRY_FILES:
        if (directory / candidate).is_file():
            entry = ["python", candidate]
            if candidate == "manage.py":
                entry = ["python", "manage.py", "runserver", "127.0.0.1:$PORT", "--noreload"]
            break
    if entry is None:
        entry = _entry_from_pyproject(directory / "pyproject.toml")
    return Detected(
        directory_name=directory.resolve().name,
        requirements=requirements,
        entry_point=entry,
        lock_note=lock_note,
    )


def _entry_from_pyproject(path: Path) -> list[str] | None:
    """The first ``[project.scripts]`` entry, run without installing the project."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    project = data.get("project")
    scripts = project.get("scripts") if isinstance(project, dict) else None
    if not isinstance(scripts, dict) or not scripts:
        return None
    target = str(next(iter(scripts.values())))
    module, _, attr = target.partition(":")
    module, attr = module.strip(), attr.strip()
    if not module.replace(".", "").replace("_", "").isalnum():
        return None
    if not attr:
        return ["python", "-m", module]
    # `python -m module` would not call the function; import and call it instead.
    call = f"import sys; from {module} import {attr.split('.')[0]} as _f; sys.exit(_f())"
    if "." in attr:
        call = f"import sys, {module} as _m; sys.exit(_m.{attr}())"
    return ["python", "-c", call]


def init(directory: Path, *, filename: str = "kiln.yaml") -> InitResult:
    target = directory / filename
    found = detect(directory)
    text = render(found)
    load_spec(text, source=str(target))  # the scaffold must itself be valid
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise Refused(
            f"{target} already exists; kiln init never overwrites a spec",
            hint="edit it, or remove it first if you really want a fresh one",
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return InitResult(path=target, detected=found)
