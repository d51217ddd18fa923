"""Starting long-lived kiln processes (controller, routers) that outlive the caller.

A short-lived launcher process starts the real one in a new session and exits, so
the long-lived process is re-parented to init: it never becomes the caller's
zombie, and a CLI that exits takes nothing down with it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,"
    " stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)\n"
)


def spawn_detached(command: list[str], log: Path) -> None:
    subprocess.run(  # noqa: S603 - our own interpreter, fixed launcher code
        [sys.executable, "-c", _LAUNCHER, str(log), *command],
        check=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
