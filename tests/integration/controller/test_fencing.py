"""Fencing with real controller processes on one state directory.

Each controller is a real process (``fenced_controller``: the real controller,
executor, ``state.db``, ledger, ``flock`` leadership, process provider and
embedded router; instances run the hello example). The canary holds at 50 % in
a pause step, so the leader is idle when it is paused.

A ``flock`` does not pass while its holder lives, even stopped; what makes it
pass under a live holder is the lock file being removed and created again (a
wiped run directory), which is how the test hands leadership over while the
old leader is stopped (SIGSTOP). When it runs again (SIGCONT) its term is over:
it changes nothing and stands down, and takes over again only when the new
leader dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.bootstrap import runtime as runtime_boot
from kiln.bootstrap.dataplane import admin_socket
from kiln.bootstrap.down import down
from kiln.bootstrap.ledger import open_ledger
from kiln.core.digest import digest_bytes
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.core.runtime.model import RELEASE, SERVICE, State
from kiln.core.traffic.table import TERM_SHIFT, RouteTable
from kiln.ports.state import Signal
from tests.integration.controller.fenced_controller import SPEC
from tests.integration.runtime.trees import hello_tree, make_writable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
V1, V2 = digest_bytes(b"fencing v1"), digest_bytes(b"fencing v2")


@dataclass
class Site:
    state: Path
    tree: Path
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)  # stopped on purpose
    desired: SqliteDesiredState = field(init=False)

    def __post_init__(self) -> None:
        self.desired = SqliteDesiredState(self.state / "state.db")

    def start(self, name: str, *digests: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.controller.fenced_controller",
                    str(self.state),
                    str(self.tree),
                    *digests,
                ],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        self.gone.add(name)
        self.procs[name].kill()
        self.procs[name].wait(timeout=30)

    def wait_for(self, condition: Callable[[], bool], what: str, seconds: float = 90.0) -> None:
        """Poll ``condition``; fail at once, with its log, if a controller died."""
        deadline = time.monotonic() + seconds
        while not condition():
            for name, proc in self.procs.items():
                if name not in self.gone and proc.poll() is not None:
                    raise AssertionError(f"controller {name} exited:\n{self.log(name)}")
            assert time.monotonic() < deadline, f"timed out waiting for: {what}"
            time.sleep(0.05)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def rollout(self) -> RolloutState | None:
        return self.desired.rollout("prod")

    def table(self) -> RouteTable | None:
        return EmbeddedRouterClient(socket_path=admin_socket(self.state, "prod")).current()

    def instances(self) -> list[tuple[str, str]]:
        provider = runtime_boot.provider("process", self.state)
        return sorted(
            (i.id.value, i.labels.get(RELEASE, ""))
            for i in provider.list({SERVICE: "hello"})
            if i.state is State.RUNNING
        )

    def actions_of(self, proc: subprocess.Popen[bytes]) -> int:
        """How many ledger events the controller of ``proc`` recorded."""
        ledger = open_ledger(self.state)
        try:
            return sum(1 for e in ledger.store.events() if e.actor == f"controller:{proc.pid}")
        finally:
            ledger.close()

    def released(self) -> RolloutState:
        """Wait for the rollout to succeed and its last actions (the route, marking
        the release stable, decommissioning the old one) to be done."""

        def settled() -> bool:
            state = self.rollout()
            return (
                state is not None
                and state.phase.terminal
                and self.desired.environment("prod").stable == state.candidate
                and {release for _, release in self.instances()} == {state.candidate}
            )

        self.wait_for(settled, "v2 released")
        state = self.rollout()
        assert state is not None and state.phase is Phase.SUCCEEDED
        return state

    def carried_to_the_end(
        self, before: RolloutState, *, term: int
    ) -> tuple[RolloutState, RouteTable, list[tuple[str, str]]]:
        """Promote the canary held at its pause; wait until the leader of ``term`` has
        released it, as the same deployment. The rollout, its route table, the instances."""
        self.desired.signal("prod", Signal.PROMOTE)
        done = self.released()
        assert done.deployment == before.deployment  # resumed, not a new rollout
        table = self.table()
        assert table is not None and table.generation >> TERM_SHIFT == term
        assert table.release(done.candidate).weight == 100  # type: ignore[union-attr]
        serving = self.instances()
        assert [release for _, release in serving] == [done.candidate]  # replicas: 1
        return done, table, serving

    def paused_at_50(self) -> RolloutState:
        """Promote v1 (the first release) at its pause; wait for v2 to hold at its
        pause step with half the traffic."""
        self.wait_for(
            lambda: (s := self.rollout()) is not None and s.stable is None and s.step == 1,
            "v1 at its pause step",
        )
        self.desired.signal("prod", Signal.PROMOTE)

        def held() -> bool:
            state = self.rollout()
            if state is None or state.stable is None or state.step != 1:
                return False
            table = self.table()  # the router is up: the leader routed v1 to it
            if table is None:
                return False
            entry = table.release(state.candidate)
            return state.phase is Phase.STEPPING and entry is not None and entry.weight == 50

        self.wait_for(held, "v2 held at 50% in its pause step")
        state = self.rollout()
        assert state is not None
        return state


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    state = tmp_path / ".kiln"
    state.mkdir(mode=0o700)
    logs = tmp_path / "logs"
    logs.mkdir()
    tree = hello_tree(tmp_path / "tree")
    site = Site(state, tree, logs)
    try:
        yield site
    finally:
        for proc in site.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait(timeout=30)
        down(state, SPEC)  # the router and every instance
        site.desired.close()
        make_writable(tree)


def test_a_paused_leader_whose_lock_passed_is_refused_and_stands_down(site: Site) -> None:
    a = site.start("a", V1, V2)
    before = site.paused_at_50()
    assert site.desired.term("prod") == 1

    os.kill(a.pid, signal.SIGSTOP)
    (site.state / "run" / "leader-prod.lock").unlink()  # the lock passes under a live holder
    site.start("b")
    site.wait_for(lambda: site.desired.term("prod") == 2, "b opens term 2")
    done, table, serving = site.carried_to_the_end(before, term=2)  # by b
    a_actions = site.actions_of(a)

    os.kill(a.pid, signal.SIGCONT)
    site.wait_for(lambda: "standing down" in site.log("a"), "a stands down")
    assert "term 1 is over (current term 2)" in site.log("a")
    # a changed nothing: not the state, not the route, not the instances, not the ledger.
    assert site.rollout() == done
    assert site.table() == table
    assert site.instances() == serving
    assert site.actions_of(a) == a_actions
    assert site.desired.term("prod") == 2

    # a keeps claiming like any follower: when b dies it leads again, in a newer term.
    site.kill("b")
    site.wait_for(lambda: site.desired.term("prod") == 3, "a opens term 3")
    site.wait_for(lambda: "prod: leading in term 3" in site.log("a"), "a says it leads again")
    assert site.log("a").count("standing down") == 1  # logged once
    assert site.rollout() == done and site.instances() == serving


def test_restarting_the_only_controller_opens_a_new_term_and_resumes(site: Site) -> None:
    a = site.start("a", V1, V2)
    before = site.paused_at_50()
    assert site.desired.term("prod") == 1
    site.gone.add("a")
    a.send_signal(signal.SIGTERM)  # a normal stop: the lock is released
    assert a.wait(timeout=60) == 0

    site.start("a2")
    site.wait_for(lambda: site.desired.term("prod") == 2, "the restarted controller opens term 2")
    assert site.rollout() == before  # resumed where it was, not restarted
    site.desired.signal("prod", Signal.PROMOTE)
    done = site.released()
    assert done.deployment == before.deployment
    table = site.table()
    assert table is not None and table.generation >> TERM_SHIFT == 2
    assert [release for _, release in site.instances()] == [done.candidate]
    assert "standing down" not in site.log("a2")
