"""``router.sticky`` reaches every route table the executor pushes (and only then):
a canary's tables keep clients on their release by the sticky cookie."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.digest import digest_bytes
from kiln.core.rollout.planner import Decision
from kiln.core.spec.loader import load_spec
from kiln.core.traffic.table import DEFAULT_STICKY_COOKIE
from kiln.ports.clock import SystemClock
from kiln.services.rollout import RolloutExecutor
from tests.unit.recorder import MemoryRecorder
from tests.unit.rollout.fakes import launcher
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.traffic.fake_router import FakeRouter

SPEC = """\
service: hello
environments:
  - name: prod
    replicas: 2
    router: {{sticky: {sticky}}}
    strategy:
      canary:
        steps:
          - setWeight: 50
          - setWeight: 100
"""


@pytest.mark.parametrize("sticky", [True, False])
def test_every_pushed_table_carries_the_declared_stickiness(tmp_path: Path, sticky: bool) -> None:
    desired = SqliteDesiredState(tmp_path / "state.db")
    router = FakeRouter()
    executor = RolloutExecutor(
        spec=load_spec(SPEC.format(sticky=str(sticky).lower()).encode()),
        desired=desired,
        provider=FakeProvider(),
        router=router,
        recorder=MemoryRecorder(),
        clock=SystemClock(),
        launcher=launcher(tmp_path),
        actor="test",
    )
    seen: list[tuple[dict[str, int], str | None]] = []

    def on_decision(_: Decision) -> None:
        table = router.current()
        if table is not None:
            weights = {r.name: r.weight for r in table.releases}
            seen.append((weights, table.sticky.cookie if table.sticky else None))

    try:
        for version in (b"v1", b"v2"):
            executor.start("prod", digest_bytes(version))
            done = executor.run("prod", timeout=10, on_decision=on_decision)
            assert str(done.phase) == "succeeded", done.reason
    finally:
        desired.close()
    assert any(len(weights) == 2 for weights, _ in seen)  # the 50/50 step was pushed
    cookies = {cookie for _, cookie in seen}
    assert cookies == ({DEFAULT_STICKY_COOKIE} if sticky else {None})
