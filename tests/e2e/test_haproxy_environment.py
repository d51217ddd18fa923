"""An environment that declares `router: {kind: haproxy}`, through the real CLI path.

A git copy of examples/hello; the on-demand controller starts one HAProxy for the
environment from the config kiln generates and drives it through its runtime API.
Under live traffic through HAProxy: deploy v1, canary v2 (its analysis judges
HAProxy's `show stat` counters), kill -9 of the controller (HAProxy keeps
serving), a weight changed behind kiln's back on the runtime socket (healed by
the next controller's loop), then `kiln down` stops HAProxy by its PID. With
`router.sticky`, HAProxy names the release in a cookie and keeps its holder there.
"""

from __future__ import annotations

import json
import os
import stat
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.adapters.traffic.haproxy import RuntimeAPI, parse_stat
from kiln.bootstrap.dataplane import haproxy_router, haproxy_socket
from kiln.bootstrap.down import peer_pid
from tests.e2e.test_controller_kill9 import (
    build_version,
    cli,
    environment,
    kill_controller,
    release_v1,
    router_port,
)
from tests.e2e.test_rollout_executor import Traffic
from tests.project import hello_spec, make_project

pytestmark = pytest.mark.e2e

SPEC = hello_spec(
    replicas=2,
    gates="this story is about the data plane; the gates have their own tests",
    rest="""\
    router: {kind: haproxy, sticky: true}
    analysis:
      metrics:
        - {name: errors, metric: error-rate, judge: sequential, minSamples: 30}
    strategy:
      canary:
        steps:
          - setWeight: 50
          - analysis: {duration: 4s}
          - setWeight: 100
""",
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("KILN_HEAL_INTERVAL", "0.5")  # inherited by the controller
    yield from make_project(tmp_path, monkeypatch, SPEC)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def served_while_controller_dead(traffic: Traffic, seconds: float) -> int:
    before = traffic.ok
    time.sleep(seconds)
    return traffic.ok - before


def wait_healed(state_dir: Path) -> None:
    deadline = time.monotonic() + 20
    while haproxy_router(state_dir, "prod").differences():
        assert time.monotonic() < deadline, "the weight was not healed"
        time.sleep(0.05)


def sticky_cookie(port: int, cookie: str | None) -> str | None:
    """The ``Set-Cookie`` of one request through HAProxy carrying ``cookie``."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"cookie": cookie} if cookie else {}
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        response.read()
        found: str | None = response.headers.get("set-cookie")
        return found


def test_a_haproxy_environment_deploys_canaries_survives_kill9_and_heals_weights(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = project / ".kiln"
    port = router_port(release_v1(project, capsys)["url"])

    sock = haproxy_socket(state_dir, "prod")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    config = (state_dir / "run" / "haproxy-prod.cfg").read_text()
    assert f"bind 127.0.0.1:{port}" in config and "level admin" in config
    haproxy_pid = peer_pid(sock)
    assert haproxy_pid is not None
    with open(f"/proc/{haproxy_pid}/cmdline", "rb") as cmdline:
        assert b"haproxy" in cmdline.read()
    assert cli(capsys, "drift", "prod")[:2] == (0, "prod: clean\n")

    v2 = build_version(project, capsys, "v2")
    api = RuntimeAPI(sock)
    with Traffic(port) as traffic:
        code, out, err = cli(capsys, "deploy", "prod", v2)
        assert code == 0, out + err
        env = environment(capsys, "prod")
        rollout = env["rollout"]
        assert isinstance(rollout, dict) and rollout["phase"] == "succeeded", rollout
        # The analysis judged HAProxy's per-release counters (`show stat`).
        stable = env["stable"]
        assert isinstance(stable, dict)
        counted = {
            m.release: m.requests for m in haproxy_router(state_dir, "prod").metrics().releases
        }
        assert counted[stable["id"]] > 0
        # router.sticky: a new client is told its release; holding the cookie, it stays.
        assert sticky_cookie(port, None).startswith(f"kiln_release={stable['id']}; ")
        assert sticky_cookie(port, f"kiln_release={stable['id']}") is None

        # kill -9 of the controller: HAProxy serves on, with nobody driving it.
        kill_controller(state_dir)
        assert served_while_controller_dead(traffic, 1.0) > 20
        assert peer_pid(sock) == haproxy_pid

        # A weight changed behind kiln's back, while no controller runs.
        rows = parse_stat(api.command("show stat"))
        # v2's two servers (v1's may linger at weight 0 until they are reaped).
        servers = [r for r in rows if r.backend == "be_prod" and r.weight > 0]
        assert len(servers) == 2 and {r.weight for r in servers} == {1}, rows
        api.expect(f"set server be_prod/{servers[0].name} weight 7")
        assert haproxy_router(state_dir, "prod").differences() != []

        # The next controller (started on demand) adopts HAProxy and its loop heals it.
        environment(capsys, "prod")
        wait_healed(state_dir)
        # Once more with the controller running: how long the loop (interval 0.5 s) takes.
        api.expect(f"set server be_prod/{servers[1].name} weight 3")
        changed = time.monotonic()
        wait_healed(state_dir)
        healed_in = time.monotonic() - changed
        time.sleep(0.5)  # traffic keeps flowing on the healed table
    with capsys.disabled():
        print(
            f"\nthrough HAProxy: ok {traffic.ok}, failed {traffic.failures}; "
            f"weight set on the socket -> healed in {healed_in:.2f}s"
        )
    assert traffic.failures == []
    assert traffic.server_errors == 0
    assert traffic.ok > 200
    assert peer_pid(sock) == haproxy_pid, "the restarted controller started a second HAProxy"

    code, out, _ = cli(capsys, "audit", "log", "-o", "json")
    kinds = [(e["kind"], (e.get("details") or {}).get("kind")) for e in json.loads(out)["events"]]
    assert ("drift.found", "route") in kinds, kinds

    assert cli(capsys, "down")[0] == 0
    deadline = time.monotonic() + 10
    while alive(haproxy_pid):
        assert time.monotonic() < deadline, "kiln down left HAProxy running"
        time.sleep(0.05)
