"""Fencing between hosts: two controllers with separate state directories share one
real PostgreSQL 15 for desired state, terms, leadership and the ledger.

Each controller is a real process (``fenced_controller`` with ``KILN_DATABASE``),
on its own state directory as on its own host: its own instances and its own
embedded router. ``a`` leads and holds a canary at 50 % in a pause step; it is
stopped (SIGSTOP) and its leadership session cut (``pg_terminate_backend``,
what a partition amounts to), so ``b`` wins the advisory lock in term 2,
resumes the same rollout from the shared desired state and carries it to the
end on its host. When ``a`` runs again (SIGCONT) its term is over: it changes
nothing -- not the shared state, not ``b``'s route table or instances, not the
ledger -- and stands down; it leads again, in term 3, when ``b`` dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kiln.adapters.store.pgdesired import PostgresDesiredState
from kiln.bootstrap.down import down
from tests.integration.controller.fenced_controller import SPEC
from tests.integration.controller.test_fencing import V1, V2, Site
from tests.integration.runtime.trees import hello_tree, make_writable

pytestmark = pytest.mark.integration


class Host(Site):
    """A ``Site`` whose desired state is the shared PostgreSQL one (its ledger too:
    ``KILN_DATABASE`` is set for the test and the controllers it starts)."""

    dsn = ""

    def __post_init__(self) -> None:
        self.desired = PostgresDesiredState(self.dsn, namespace=SPEC.service)  # type: ignore[assignment]


def cut_leader_sessions(dsn: str) -> int:
    """End every leadership session (only the stopped leader has one): its locks go."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'kiln-leader'"
        ).fetchall()
    return len(rows)


@pytest.fixture
def hosts(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Host, Host]]:
    monkeypatch.setenv("KILN_DATABASE", dsn)
    Host.dsn = dsn
    made: list[Host] = []
    try:
        for name in ("a", "b"):
            root = tmp_path / name
            state = root / ".kiln"
            state.mkdir(parents=True, mode=0o700)
            (root / "logs").mkdir()
            made.append(Host(state, hello_tree(root / "tree"), root / "logs"))
        yield made[0], made[1]
    finally:
        for host in made:
            for proc in host.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                proc.wait(timeout=30)
            down(host.state, SPEC)
            host.desired.close()
            make_writable(host.tree)


def test_a_stopped_leader_on_another_host_is_refused_and_stands_down(
    hosts: tuple[Host, Host], dsn: str
) -> None:
    here, there = hosts
    a = here.start("a", V1, V2)
    before = here.paused_at_50()
    assert here.desired.term("prod") == 1

    os.kill(a.pid, signal.SIGSTOP)
    assert cut_leader_sessions(dsn) == 1
    there.start("b")
    there.wait_for(lambda: "prod: leading in term 2" in there.log("b"), "b leads in term 2")
    assert there.desired.term("prod") == 2
    assert there.rollout() == before  # the shared state: b resumes a's rollout
    done, table, serving = there.carried_to_the_end(before, term=2)  # by b, on its host
    a_actions = here.actions_of(a)
    assert a_actions > 0 and there.actions_of(there.procs["b"]) > 0  # one shared ledger

    os.kill(a.pid, signal.SIGCONT)
    # a finds its term over: its tick is refused by the store (StaleLeader, "standing
    # down"), or its lock check finds the session gone first; either way it only
    # follows from now on, and keeps claiming.
    here.wait_for(
        lambda: "standing down" in here.log("a") or "lock was lost" in here.log("a"),
        "a stands down",
    )
    time.sleep(1.5)  # time for a write it should not make
    assert there.rollout() == done
    assert there.table() == table
    assert there.instances() == serving
    assert here.actions_of(a) == a_actions
    assert there.desired.term("prod") == 2
    assert "leading in term" not in here.log("a").split("leading in term 1", 1)[1]

    there.kill("b")
    here.wait_for(lambda: "prod: leading in term 3" in here.log("a"), "a leads again in term 3")
    assert here.desired.term("prod") == 3
    assert here.rollout() == done  # a resumes the finished rollout: nothing to redo
