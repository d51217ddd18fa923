"""A real ledger in a temporary state directory, with its key and a few events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.bootstrap.ledger import Ledger, open_ledger
from kiln.core.ledger.events import EventDraft
from kiln.core.ledger.kinds import EventKind

START = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


class StepClock:
    """A frozen clock that moves one second per call, so every event has its own time."""

    def __init__(self) -> None:
        self.moment = START

    def now(self) -> datetime:
        from datetime import timedelta

        self.moment += timedelta(seconds=1)
        return self.moment

    def monotonic(self) -> float:
        return self.moment.timestamp()


def fill(ledger: Ledger, count: int) -> None:
    drafts = [
        EventDraft(
            EventKind.BUILD if seq % 2 else EventKind.TEST,
            "ci",
            artifact="sha256:" + f"{seq:064x}",
            details={"n": seq},
        )
        for seq in range(count)
    ]
    ledger.store.append(drafts)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / ".kiln"
    path.mkdir(mode=0o700)
    (path / "keys").mkdir(mode=0o700)
    return path


@pytest.fixture
def ledger(state_dir: Path) -> Iterator[Ledger]:
    opened = open_ledger(state_dir, clock=StepClock())
    try:
        yield opened
    finally:
        opened.close()
