"""Test-only fault injection: ``KILN_FAULT`` makes the controller kill itself at a
named point, so a test can crash it exactly where a real crash would hurt most.

``KILN_FAULT=after-state-save`` sends SIGKILL to the process right after the
rollout executor commits a transition's state (with its outbox rows) and before
its events reach the ledger (``kiln.services.rollout.AFTER_STATE_SAVE``). The
variable is read once, when the controller is built; unset (always, outside
tests) the hook is absent and costs nothing. Never set it in production: the
controller dies at its first rollout transition.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

FAULT_ENV = "KILN_FAULT"


def crash_point() -> Callable[[str], None] | None:
    """The hook the executor calls at each crash point, or None without ``KILN_FAULT``."""
    wanted = os.environ.get(FAULT_ENV, "").strip()
    if not wanted:
        return None

    def hit(point: str) -> None:
        if point == wanted:
            os.kill(os.getpid(), signal.SIGKILL)

    return hit
