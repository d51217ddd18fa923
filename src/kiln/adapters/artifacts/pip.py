"""``DependencyInstaller`` with pip: wheels only, hashes required, no bytecode.

``pip install --no-deps --require-hashes --only-binary=:all: --no-compile
--target DIR -r LOCK`` installs exactly what the lock pins, refuses anything
unhashed, never runs a package's build code, and writes no ``.pyc`` files
(whose contents embed source mtimes). pip's own download cache is used, so an
unchanged lock installs offline once it has been seen.

Console scripts that pip writes under ``bin/`` start with the absolute path of
the build's interpreter, which differs between machines; they are rewritten to
``#!/usr/bin/env python3``.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from packaging.tags import sys_tags

from kiln.errors import Permanent, Temporary

_NETWORK_HINTS = ("NewConnectionError", "ConnectionError", "Temporary failure in name resolution")


class PipInstaller:
    def __init__(self, *, python: str | None = None, timeout: float = 900.0) -> None:
        self._python = python or sys.executable
        self._timeout = timeout

    def environment(self) -> str:
        tag = next(iter(sys_tags()))
        try:
            pip_version = importlib.metadata.version("pip")
        except importlib.metadata.PackageNotFoundError:
            pip_version = "unknown"
        python = ".".join(str(v) for v in sys.version_info[:3])
        return f"python {python} {tag} pip {pip_version}"

    def install(self, requirements: Path, target: Path) -> None:
        argv = [
            self._python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--no-compile",
            "--no-input",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--quiet",
            "--target",
            str(target),
            "-r",
            str(requirements),
        ]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PIP_NO_INPUT": "1"}
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv, env=env, capture_output=True, timeout=self._timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise Temporary(
                f"pip did not finish installing {requirements} within {self._timeout:.0f}s",
                delay=30.0,
            ) from None
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace")
            lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-3:]
            detail = "; ".join(errors)[:800]
            message = f"the pinned requirements in {requirements.name} do not resolve: {detail}"
            hint = (
                "every line needs ==VERSION and --hash=sha256:...; kiln installs wheels only "
                "(--only-binary=:all:) from the configured index"
            )
            if any(word in stderr for word in _NETWORK_HINTS):
                raise Temporary(message, delay=30.0, hint="the package index is unreachable")
            raise Permanent(message, hint=hint)
        _rewrite_shebangs(target / "bin")


def _rewrite_shebangs(bin_dir: Path) -> None:
    if not bin_dir.is_dir():
        return
    for script in sorted(bin_dir.iterdir()):
        if not script.is_file() or script.is_symlink():
            continue
        with open(script, "rb") as handle:
            head = handle.read(2)
            if head != b"#!":
                continue
            first = handle.readline()
            rest = handle.read()
        if b"python" in first:
            script.write_bytes(b"#!/usr/bin/env python3\n" + rest)
