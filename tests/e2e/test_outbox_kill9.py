"""kill -9 of the real `kiln serve` between every transition's state save and its
ledger append: no ledger event is lost, none is recorded twice.

The controller is the `kiln serve` the CLI starts on demand, in a git copy of
examples/hello, with the test-only fault hook ``KILN_FAULT=after-state-save``
in its environment: it SIGKILLs itself right after committing a transition
(state and outbox rows), before the events reach the ledger, so no controller
survives a transition. Every CLI call after that starts a new one, which
flushes the outbox, resumes the rollout and dies at its next transition, until
the rollout is over. Then the ledger holds each of the rollout's outbox events
once, in save order, from ``deploy.start`` to ``deploy.complete``; `kiln audit
verify` passes; and the release is stable. (A first release, to keep the story
short: tests/e2e/test_controller_kill9.py has the kills under live traffic.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.bootstrap.ledger import open_ledger
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.outbox import IDEMPOTENCY_KEY
from tests.e2e.test_controller_kill9 import build_version, cli
from tests.project import hello_spec, make_project

pytestmark = pytest.mark.e2e

CANARY = hello_spec(
    replicas=1,
    gates="this story is about the ledger across crashes; the gates have their own tests",
    rest="""\
    strategy:
      canary:
        steps:
          - setWeight: 50
          - setWeight: 100
""",
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from make_project(tmp_path, monkeypatch, CANARY)


# A CLI request cut short by the controller's SIGKILL leaves httpx's half-open unix
# socket to the garbage collector (a ResourceWarning there); that is the crash this
# story makes on purpose, not a leak of the code under test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_kill9_after_every_state_save_loses_no_ledger_event(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = project / ".kiln"
    v1 = build_version(project, capsys, "v1")
    monkeypatch.setenv("KILN_FAULT", "after-state-save")  # every controller from now on
    desired = SqliteDesiredState(state_dir / "state.db")
    try:
        cli(capsys, "deploy", "prod", v1, "--no-wait")  # its controller dies at the save
        deadline = time.monotonic() + 120  # a controller start is 2-20 s here
        while True:
            assert time.monotonic() < deadline, "the rollout never ended"
            state = desired.rollout("prod")
            stable = desired.environment("prod").stable
            if (
                state is not None
                and state.phase.terminal
                and not desired.pending_events()
                and stable == state.candidate
            ):
                break
            cli(capsys, "status", "prod")  # starts a controller if the last one died
            time.sleep(0.1)
        assert str(state.phase) == "succeeded", state.reason
        deployment = state.deployment
    finally:
        desired.close()
    monkeypatch.delenv("KILN_FAULT")

    ledger = open_ledger(state_dir)
    try:
        events = [e for e in ledger.store.events() if e.details.get("deployment") == deployment]
    finally:
        ledger.close()
    keyed = [e for e in events if IDEMPOTENCY_KEY in e.details]
    rows = [int(str(e.details[IDEMPOTENCY_KEY]).rsplit("/", 1)[1]) for e in keyed]
    assert rows == list(range(rows[0], rows[0] + len(rows))), f"lost or repeated: {rows}"
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.DEPLOY_START) == 1 and kinds.count(EventKind.DEPLOY_COMPLETE) == 1
    assert keyed[0].kind is EventKind.DEPLOY_START and keyed[-1].kind is EventKind.DEPLOY_COMPLETE
    # deploy.start and the steps after it: each a transition no controller survived.
    assert len(keyed) >= 3, [e.kind for e in keyed]
    with capsys.disabled():
        print(f"\n{len(keyed)} outbox events of {len(rows)} rows, each once, in order")
    code, out, err = cli(capsys, "audit", "verify")
    assert code == 0, out + err
