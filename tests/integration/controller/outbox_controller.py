"""A controller process for the outbox crash test (``python -m`` this module).

The real ``Controller``, ``RolloutExecutor`` and ``EventOutbox`` on the state
directory's ``state.db`` (desired state, outbox) and its SQLite ledger, with
``flock`` leadership in ``run/`` and the test-only crash hook read from
``KILN_FAULT`` exactly as ``kiln serve`` wires it (``kiln.bootstrap.faults``).
The provider and router are the in-memory fakes: what is under test is the
durability of state and ledger across a SIGKILL, and a restarted controller
re-creates instances and routes the way it would after losing real ones.

    python -m tests.integration.controller.outbox_controller STATE_DIR [--no-outbox] [DIGEST]

It deploys DIGEST to ``prod`` if no rollout exists yet, drives the rollout, and
exits 0 once it is over and the outbox is empty (prints ``done``).
``--no-outbox`` wires the executor without the outbox (the old way: save, then
record), so the test can show the same crash loses events there.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.adapters.store.leader import FileLeaderLock
from kiln.bootstrap.faults import crash_point
from kiln.bootstrap.ledger import recorder
from kiln.core.digest import Digest, parse_digest
from kiln.core.spec.loader import load_spec
from kiln.ports.clock import SystemClock
from kiln.services.controller import Controller
from kiln.services.outbox import EventOutbox
from kiln.services.rollout import RolloutExecutor
from tests.unit.rollout.fakes import launcher
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.traffic.fake_router import FakeRouter

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: prod
    replicas: 1
    strategy:
      canary:
        steps:
          - setWeight: 25
          - pause: {duration: 0.1s}
          - setWeight: 50
          - setWeight: 100
"""
)


def main(argv: list[str]) -> int:
    state_dir = Path(argv[0])
    use_outbox = "--no-outbox" not in argv
    digests = [a for a in argv[1:] if not a.startswith("--")]
    (state_dir / "run").mkdir(parents=True, exist_ok=True)
    desired = SqliteDesiredState(state_dir / "state.db")
    ledger = recorder(state_dir)
    executor = RolloutExecutor(
        spec=SPEC,
        desired=desired,
        provider=FakeProvider(),
        router=FakeRouter(),
        recorder=ledger,
        clock=SystemClock(),
        launcher=launcher(state_dir),
        actor=f"controller:{os.getpid()}",
        journal=desired,
        outbox=EventOutbox(store=desired, ledger=ledger) if use_outbox else None,
        crash_point=crash_point(),
    )
    leader = FileLeaderLock(state_dir / "run")

    def resolve(reference: str) -> Digest:
        return parse_digest(reference)

    controller = Controller(
        spec=SPEC,
        leader=leader,
        clock=SystemClock(),
        address=f"pid:{os.getpid()}",
        desired=desired,
        executors={"prod": executor},
        admit=lambda _digest, _env, _actor: None,
        resolve=resolve,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            controller.claim_environments()
            if "prod" in leader.held():
                # Read from the store, not through the executor (whose read flushes):
                # the controller's own loop must flush what a crash left.
                state = desired.rollout("prod")
                if state is None and digests:
                    controller.deploy("prod", digests[0], actor="test")
                elif state is not None and state.phase.terminal and not desired.pending_events():
                    print("done", state.phase, flush=True)
                    return 0
            time.sleep(0.05)
        print("timed out", file=sys.stderr)
        return 1
    finally:
        controller.stop()
        leader.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
