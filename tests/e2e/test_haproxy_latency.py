"""A latency regression caught under `router: {kind: haproxy}`, through the real CLI.

A git copy of examples/hello; v2 answers 300 ms later than v1. Its canary's
analysis judges `latency-p95` from source: router, which under HAProxy comes
from HAProxy's request log read by the controller (``haproxy_metrics``): the
p95 of v2's requests is above the 250 ms threshold (twice: one slow
interval is tolerated, so a loaded machine does not fail v1), so v2 is rolled back while
traffic flows, with no failed request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.bootstrap.dataplane import haproxy_router
from tests.e2e.test_controller_kill9 import (
    build_version,
    cli,
    environment,
    router_port,
)
from tests.e2e.test_haproxy_environment import SPEC as HAPROXY_SPEC
from tests.e2e.test_rollout_executor import Traffic
from tests.project import git, make_project

pytestmark = pytest.mark.e2e

# The story of test_haproxy_environment, one replica, judged on latency instead.
SPEC = (
    HAPROXY_SPEC.split("    analysis:")[0].replace("replicas: 2", "replicas: 1")
    + """\
    analysis:
      metrics:
        - name: p95
          metric: latency-p95
          judge: threshold
          max: 0.25
          interval: 1s
          failureLimit: 1
          minSamples: 3
    strategy:
      canary:
        steps:
          - setWeight: 50
          - analysis: {duration: 5s}
          - setWeight: 100
"""
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from make_project(tmp_path, monkeypatch, SPEC)


def test_a_slower_canary_is_rolled_back_on_haproxy_latency(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = project / ".kiln"
    v1 = build_version(project, capsys, "v1")
    port = router_port(environment(capsys, "prod")["url"])
    with Traffic(port):  # v1's own analysis needs traffic (503s until it serves)
        code, out, err = cli(capsys, "deploy", "prod", v1)
    assert code == 0, out + err

    app = project / "app.py"
    source = app.read_text()
    slow = source.replace('os.environ.get("EXTRA_LATENCY_MS", "0")', '"300"')
    assert slow != source
    app.write_text(slow)
    git(project, "commit", "-qam", "v2: 300 ms slower")
    v2 = build_version(project, capsys, "v2-built")

    started = time.monotonic()
    with Traffic(port) as traffic, Traffic(port) as more:
        code, out, err = cli(capsys, "deploy", "prod", v2)
        took = time.monotonic() - started
        assert code != 0, out + err
        env = environment(capsys, "prod")
        rollout = env["rollout"]
        assert isinstance(rollout, dict) and rollout["phase"] == "rolled-back", rollout
        stable = env["stable"]
        assert isinstance(stable, dict)
        metrics = haproxy_router(state_dir, "prod").metrics()
    with capsys.disabled():
        print(f"\nlatency regression under HAProxy: rolled back {took:.1f}s after deploy")
    assert traffic.failures == [] and more.failures == []
    assert traffic.server_errors == more.server_errors == 0

    # The rollback names the latency figure, judged on the histogram from HAProxy's log.
    code, out, _ = cli(capsys, "audit", "log", "-o", "json")
    rollbacks = [e for e in json.loads(out)["events"] if e["kind"] == "rollback"]
    assert rollbacks, out
    reason = str(rollbacks[-1]["details"]["reason"])
    assert reason.startswith("analysis: p95: 2 failed measurements") and "> max 0.25" in reason
    (canary,) = [m for m in metrics.releases if m.release != stable["id"]]
    assert canary.latency.count > 0
    quantile = canary.latency.quantile(0.5)
    assert quantile is not None and quantile >= 0.5  # every v2 answer took >= 300 ms
