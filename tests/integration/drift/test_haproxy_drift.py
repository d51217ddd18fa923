"""A weight changed by hand through HAProxy's runtime API is route drift, and healed.

Real HAProxy (driven only through its admin socket), real hello processes, the
rollout executor deploying through the ``Router`` port, traffic the whole time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiln.adapters.traffic.haproxy import HAProxyProcess, HAProxyRouter, base_config
from kiln.core.spec.loader import load_spec
from kiln.services.reconcile import Reconciler
from tests.drift_rig import drift_rig
from tests.e2e.test_rollout_executor import Ledger, Traffic
from tests.integration.traffic.conftest import free_port

pytestmark = pytest.mark.integration

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: prod
    replicas: 2
    health: {interval: 50ms, startTimeout: 20s}
    strategy: {canary: {steps: [{setWeight: 100}]}}
"""
)


@dataclass
class Rig:
    port: int
    router: HAProxyRouter
    ledger: Ledger
    reconciler: Reconciler


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    port = free_port()
    sock = tmp_path / "admin.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(base_config("prod", f"127.0.0.1:{port}", sock))
    process = HAProxyProcess(config=config, stats_socket=sock)
    api = process.start()
    try:
        router = HAProxyRouter(api=api, environment="prod", state_file=tmp_path / "routes.json")
        with drift_rig(tmp_path, SPEC, router) as world:
            world.deploy()
            yield Rig(port, router, world.ledger, world.reconciler)
    finally:
        process.stop()


def test_a_weight_set_through_the_haproxy_socket_is_found_and_healed(rig: Rig) -> None:
    assert rig.reconciler.scan("prod").clean
    servers = rig.router.servers()
    assert len(servers) == 2 and {s.weight for s in servers.values()} == {1}
    victim = sorted(servers)[0]
    with Traffic(rig.port) as traffic:
        rig.router.api.expect(f"set server {rig.router.backend}/{victim} weight 7")
        time.sleep(0.2)
        report = rig.reconciler.reconcile("prod")
        time.sleep(0.3)
    assert traffic.failures == [] and traffic.server_errors == 0 and traffic.ok > 10
    (finding,) = report["findings"]
    assert finding["kind"] == "route"
    assert f"HAProxy server {victim} of release" in finding["reason"]
    assert "has weight 7, the table gives 1" in finding["reason"]
    assert [h["kind"] for h in report["healed"]] == ["reapply-route"]
    assert {s.weight for s in rig.router.servers().values()} == {1}
    assert rig.reconciler.scan("prod").clean
    kinds = rig.ledger.kinds()
    assert kinds.count("drift.found") == 1 and kinds.count("heal") == 1
