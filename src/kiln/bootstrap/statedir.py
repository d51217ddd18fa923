"""The ``.kiln/`` state directory (ARCHITECTURE.md, "Local state").

Created on first use with mode 0700 (it holds keys and the ledger); ``keys/`` and
``run/`` are 0700 too. Existing directories with looser modes are tightened.
"""

from __future__ import annotations

from pathlib import Path

from kiln.errors import ConfigError

SUBDIRS = ("store", "keys", "run", "instances", "logs")


def ensure_state_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)
        for sub in SUBDIRS:
            (path / sub).mkdir(exist_ok=True, mode=0o700)
            (path / sub).chmod(0o700)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the state directory {path}: {exc.strerror}",
            hint="pass a writable directory with --state-dir or KILN_STATE_DIR",
        ) from None
    return path
