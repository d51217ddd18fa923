"""kill -9 between a rollout's state save and its ledger append loses no event.

A real controller process (``outbox_controller``: the real controller, executor,
outbox, ``state.db`` and SQLite ledger) runs with ``KILN_FAULT=after-state-save``,
so it SIGKILLs itself right after committing a transition and before appending
its events. It is started again and again, each run dying at its first
transition, until the rollout is over: every transition of the rollout is
crashed exactly there once. The ledger must then hold every transition's events
exactly once, in order (idempotency keys ``<deployment>/1..N`` with no gap and
no repeat), the outbox must be empty, and `kiln audit verify` must pass.

The same crash without the outbox (``--no-outbox``) loses the events, which is
what shows this test can fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.bootstrap.ledger import open_ledger
from kiln.cli.main import main
from kiln.core.digest import digest_bytes
from kiln.core.ledger.events import Event
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.outbox import IDEMPOTENCY_KEY
from kiln.core.rollout.planner import Phase

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
V1 = digest_bytes(b"outbox v1")
MAX_RUNS = 15  # the rollout has 4 transitions; each run crashes at one


def run(state: Path, *args: str, fault: bool) -> int:
    """One controller process until it exits (or kills itself); its return code."""
    env = {k: v for k, v in os.environ.items() if k != "KILN_FAULT"}
    if fault:
        env["KILN_FAULT"] = "after-state-save"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.controller.outbox_controller", str(state), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.decode()[-2000:]
    return proc.returncode


def ledger_events(state: Path) -> list[Event]:
    ledger = open_ledger(state)
    try:
        return [e for e in ledger.store.events() if e.environment == "prod"]
    finally:
        ledger.close()


def test_every_transition_crashed_after_its_save_still_reaches_the_ledger_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kills = 0
    for attempt in range(MAX_RUNS):
        code = run(tmp_path, V1, fault=True)
        if code == 0:
            break
        kills += 1
        assert attempt < MAX_RUNS - 1, "the rollout never finished"
    desired = SqliteDesiredState(tmp_path / "state.db")
    state = desired.rollout("prod")
    assert state is not None and state.phase is Phase.SUCCEEDED
    assert desired.pending_events() == []
    # The start, then each transition (provisioned → pause, → setWeight 50, →
    # succeeded with its deploy.complete): every one of them died once.
    assert kills >= 4, kills

    events = ledger_events(tmp_path)
    every = [e.kind for e in events]
    assert every.count(EventKind.DEPLOY_START) == 1, every
    assert every.count(EventKind.DEPLOY_COMPLETE) == 1, every
    keyed = [e for e in events if IDEMPOTENCY_KEY in e.details]
    keys = [e.details[IDEMPOTENCY_KEY] for e in keyed]
    assert len(keys) == len(set(keys)), f"an event was appended twice: {keys}"
    # Each killed run saved one transition whose events had to survive it: the rows
    # are numbered 1..N in save order, and the ledger holds all of them, in order.
    assert keys == [f"{state.deployment}/{n}" for n in range(1, len(keys) + 1)]
    assert len({e.details["step"] for e in keyed if "step" in e.details}) >= 3
    kinds = [e.kind for e in keyed]
    assert kinds[0] is EventKind.DEPLOY_START and kinds[-1] is EventKind.DEPLOY_COMPLETE
    steps = [
        (e.details["step"], e.details["phase"]) for e in keyed if e.kind is EventKind.ROLLOUT_STEP
    ]
    assert steps == sorted(steps, key=lambda s: s[0]), "transitions recorded out of order"
    assert len(keyed) >= kills  # at least one event per crashed transition

    code = main(["--state-dir", str(tmp_path), "audit", "verify"])
    out = capsys.readouterr().out
    assert code == 0, out


def test_without_the_outbox_the_same_crash_loses_the_transition_events(tmp_path: Path) -> None:
    assert run(tmp_path, V1, "--no-outbox", fault=True) == -signal.SIGKILL  # at the start's save
    assert run(tmp_path, "--no-outbox", fault=False) == 0
    state = SqliteDesiredState(tmp_path / "state.db").rollout("prod")
    assert state is not None and state.phase is Phase.SUCCEEDED
    kinds = [e.kind for e in ledger_events(tmp_path)]
    assert EventKind.DEPLOY_COMPLETE in kinds  # the rollout went on and was recorded...
    assert EventKind.DEPLOY_START not in kinds  # ...but its start was lost in the crash
