"""A controller process for the fencing tests (``python -m`` this module).

It is ``kiln serve`` without its API, admission or artifact store: the real
``Controller`` and ``RolloutExecutor`` on the state directory's ``state.db``
(desired state and terms), its ledger, ``flock`` leadership in ``run/``, the
process provider and the environment's embedded router. Instances run the
hello tree given on the command line. It claims every 0.1 s, deploys the
digests it was given one after another while it leads, and stops on SIGTERM.

With ``KILN_DATABASE`` in its environment it is a controller of a team sharing
one PostgreSQL: desired state, terms and the ledger there (the wiring of
``kiln.bootstrap``), leadership by advisory lock; the state directory keeps
only what is local to its host (instances, router).

    python -m tests.integration.controller.fenced_controller STATE_DIR TREE [DIGEST ...]
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from kiln.adapters.store.leader import FileLeaderLock
from kiln.adapters.store.pgleader import PostgresLeaderLock
from kiln.bootstrap import dataplane
from kiln.bootstrap import runtime as runtime_boot
from kiln.bootstrap.database import desired_state, shared_database
from kiln.bootstrap.ledger import recorder
from kiln.core.digest import Digest, parse_digest
from kiln.core.release import Release
from kiln.core.runtime.model import LaunchSpec, Limits
from kiln.core.spec.loader import load_spec
from kiln.ports.clock import SystemClock
from kiln.ports.leader import ClosableLeaderLock
from kiln.services.controller import Controller
from kiln.services.rollout import RolloutExecutor

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: prod
    replicas: 1
    strategy:
      canary:
        steps:
          - setWeight: 50
          - pause: {}
          - setWeight: 100
"""
)


def main(argv: list[str]) -> int:
    state_dir, tree = Path(argv[0]), Path(argv[1])
    pending = list(argv[2:])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    (state_dir / "logs").mkdir(exist_ok=True)  # the router's log, as `kiln` makes it
    clock = SystemClock()
    database = shared_database()
    desired = desired_state(state_dir, namespace=SPEC.service, database=database)
    provider = runtime_boot.provider("process", state_dir)
    provider.recover()
    env = SPEC.environment("prod")

    def launch(release: Release) -> LaunchSpec:
        return LaunchSpec(
            service=SPEC.service,
            environment=release.environment,
            release=release.id,
            artifact=release.artifact,
            config_digest=release.config,
            root=tree,
            command=("python", "app.py"),
            limits=Limits(sandbox="none"),
        )

    executor = RolloutExecutor(
        spec=SPEC,
        desired=desired,
        provider=provider,
        router=dataplane.router_for(state_dir, env),
        recorder=recorder(state_dir, database=database),
        clock=clock,
        launcher=launch,
        actor=f"controller:{os.getpid()}",
        journal=desired,
    )
    leader: ClosableLeaderLock = (
        PostgresLeaderLock(database, namespace=SPEC.service)
        if database
        else FileLeaderLock(state_dir / "run")
    )

    def resolve(reference: str) -> Digest:
        return parse_digest(reference)

    controller = Controller(
        spec=SPEC,
        leader=leader,
        clock=clock,
        address=f"pid:{os.getpid()}",
        desired=desired,
        executors={env.name: executor},
        admit=lambda _digest, _env, _actor: None,
        resolve=resolve,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    print("ready", file=sys.stderr, flush=True)
    while not stop.wait(0.1):
        controller.claim_environments()
        if pending and env.name in leader.held():
            state = desired.rollout(env.name)
            settled = state is None or (
                state.phase.terminal and desired.environment(env.name).stable == state.candidate
            )
            if settled:  # the last one finished and its release is marked stable
                controller.deploy(env.name, pending.pop(0), actor="test")
    controller.stop()
    leader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
