"""An analysis session belongs to one deployment: the next deployment's analysis step
with the same step number starts its own session (a regression: one executor kept
the first release's empty, already-expired session and judged v2 with it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.digest import digest_bytes
from kiln.core.ledger.kinds import EventKind
from kiln.core.spec.loader import load_spec
from kiln.ports.clock import SystemClock
from kiln.services.rollout import RolloutExecutor
from tests.unit.rollout.fakes import launcher
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.traffic.fake_router import FakeRouter

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: prod
    analysis:
      metrics:
        - {name: errors, metric: error-rate, judge: sequential, minSamples: 30}
    strategy:
      canary:
        steps:
          - setWeight: 50
          - analysis: {duration: 400ms}
          - setWeight: 100
"""
)


class Recorder:
    def __init__(self) -> None:
        self.kinds: list[EventKind] = []

    def record(self, kind: EventKind, *, actor: str, **fields: Any) -> int:
        assert isinstance(kind, EventKind) and actor
        self.kinds.append(kind)
        return len(self.kinds)


def test_the_second_deployment_gets_its_own_analysis_session(tmp_path: Path) -> None:
    desired = SqliteDesiredState(tmp_path / "state.db")

    executor = RolloutExecutor(
        spec=SPEC,
        desired=desired,
        provider=FakeProvider(),
        router=FakeRouter(),
        recorder=Recorder(),
        clock=SystemClock(),
        launcher=launcher(tmp_path),
        actor="test",
    )
    try:
        executor.start("prod", digest_bytes(b"v1"))
        first = executor.run("prod", timeout=10)
        assert str(first.phase) == "succeeded", first.reason  # no baseline: not judged

        executor.start("prod", digest_bytes(b"v2"))
        began = time.monotonic()
        second = executor.run("prod", timeout=10)
        # No traffic reaches the fake router: the judge of v2 must run its window and
        # find too few samples, never reuse v1's empty session ("has no metrics").
        assert str(second.phase) == "rolled-back"
        assert "has no metrics" not in second.reason, second.reason
        assert "errors" in second.reason, second.reason
        assert time.monotonic() - began >= 0.4
    finally:
        desired.close()
