"""Blue/green with manual promotion through the real controller, under load.

A git copy of examples/hello whose prod is blue/green with `autoPromotionSeconds:
null` and a 30 s bake. The story: the preview header reaches the new release
while normal traffic stays on the old one; `kiln promote` moves everything;
`kiln rollback` during the bake puts traffic back on the warm old instances in
one route change; and when the old instances are gone, `kiln abort` during the
bake provisions fresh ones before any traffic moves. No request fails.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.bootstrap.runtime import provider
from kiln.core.rollout.planner import RolloutState
from kiln.core.runtime.model import ENVIRONMENT, RELEASE, State
from kiln.ports.runtime import Provider
from tests.e2e.test_controller_kill9 import (
    build_version,
    cli,
    environment,
    router_port,
)
from tests.e2e.test_rollout_executor import Traffic
from tests.project import hello_spec, make_project

pytestmark = pytest.mark.e2e

BLUEGREEN = hello_spec(
    replicas=2,
    gates="this story is about rollouts; the pipeline's gates have their own tests",
    rest="""\
    strategy:
      blueGreen: {autoPromotionSeconds: null, bake: 30s}
""",
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from make_project(tmp_path, monkeypatch, BLUEGREEN)


def served(port: int, n: int = 20, *, preview: bool = False) -> set[str]:
    """The instance ids that answered ``n`` requests (all must be 200)."""
    headers = {"x-kiln-preview": "1"} if preview else {}
    seen: set[str] = set()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for _ in range(n):
            conn.request("GET", "/", headers=headers)
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, body
            seen.add(json.loads(body)["instance"])
    finally:
        conn.close()
    return seen


def instances_of(runtime: Provider, release: str) -> set[str]:
    return {
        i.id.value
        for i in runtime.list({ENVIRONMENT: "prod", RELEASE: release})
        if i.state is State.RUNNING
    }


def wait_for(
    desired: SqliteDesiredState, what: str, ok: Callable[[RolloutState], bool]
) -> RolloutState:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = desired.rollout("prod")
        if state is not None and ok(state):
            return state
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}: {desired.rollout('prod')}")


def settles_on(port: int, wanted: set[str], *, preview: bool = False) -> None:
    """The route follows the persisted state (persist, then act): wait for it, then check."""
    deadline = time.monotonic() + 10
    while not served(port, 10, preview=preview) <= wanted:
        assert time.monotonic() < deadline, f"traffic never settled on {wanted}"
        time.sleep(0.05)
    assert served(port, 20, preview=preview) <= wanted


def previewing(desired: SqliteDesiredState, runtime: Provider, port: int) -> RolloutState:
    """Wait for the preview; check the header reaches the new release and nothing else."""
    state = wait_for(desired, "the preview", lambda s: s.preview and s.weight == 0)
    new = instances_of(runtime, state.candidate)
    old = instances_of(runtime, str(state.stable))
    settles_on(port, new, preview=True)
    assert served(port, 20) <= old
    return state


def test_manual_promotion_then_rollback_during_bake(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = project / ".kiln"
    v1 = build_version(project, capsys, "v1")
    assert cli(capsys, "deploy", "prod", v1, "--no-wait")[0] == 0
    desired = SqliteDesiredState(state_dir / "state.db")
    runtime = provider("process", state_dir)
    try:
        # A first release waits for `kiln promote` too.
        wait_for(desired, "the first pause", lambda s: str(s.phase) == "stepping")
        assert cli(capsys, "promote", "prod")[0] == 0
        wait_for(desired, "the first release", lambda s: str(s.phase) == "succeeded")
        port = router_port(environment(capsys, "prod")["url"])
        v2 = build_version(project, capsys, "v2")
        with Traffic(port) as traffic:
            # 1. Preview by header, the old release keeps normal traffic, until promoted.
            code, _, err = cli(capsys, "deploy", "prod", v2, "--no-wait")
            assert code == 0, err
            state = previewing(desired, runtime, port)
            old = instances_of(runtime, str(state.stable))
            time.sleep(1.0)
            assert desired.rollout("prod") == state, "a manual promotion must wait"
            assert cli(capsys, "promote", "prod")[0] == 0
            baking = wait_for(desired, "the bake", lambda s: s.weight == 100)
            new = instances_of(runtime, baking.candidate)
            settles_on(port, new)
            settles_on(port, new, preview=True)

            # 2. Rollback during the bake: one route change back to the warm old instances.
            assert instances_of(runtime, str(baking.stable)) == old, "the old release is warm"
            assert cli(capsys, "rollback", "prod")[0] == 0
            back = wait_for(desired, "the rollback", lambda s: str(s.phase) == "rolled-back")
            assert back.deployment == baking.deployment
            settles_on(port, old)
            assert instances_of(runtime, baking.candidate) == set()  # decommissioned

            # 3. Again, but the old instances die during the bake: abort provisions
            # fresh ones of the stable release first, then moves the traffic.
            code, _, err = cli(capsys, "deploy", "prod", v2, "--no-wait")
            assert code == 0, err
            previewing(desired, runtime, port)
            assert cli(capsys, "promote", "prod")[0] == 0
            again = wait_for(desired, "the second bake", lambda s: s.weight == 100)
            for instance in runtime.list({ENVIRONMENT: "prod", RELEASE: str(again.stable)}):
                runtime.destroy(instance.id, drain_timeout=1.0)
            assert instances_of(runtime, str(again.stable)) == set()
            assert cli(capsys, "abort", "prod")[0] == 0
            wait_for(desired, "the second rollback", lambda s: str(s.phase) == "rolled-back")
            fresh = instances_of(runtime, str(again.stable))
            assert len(fresh) == 2 and not fresh & old
            settles_on(port, fresh)
            time.sleep(0.3)
        with capsys.disabled():
            print(f"\nblue/green: ok {traffic.ok}, failed {traffic.failures}")
        assert traffic.failures == []
        assert traffic.server_errors == 0
    finally:
        desired.close()
