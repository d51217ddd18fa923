"""Drift injected on a real deployment (real processes, the real embedded router),
detected and healed by replacement while a client sends traffic the whole time.

The kinds: an instance killed with SIGKILL (healed by the controller's own loop
within one interval), a file edited inside the shared unpacked tree, a route
table changed behind kiln's back, and an impostor process carrying kiln's
labels. Every finding and every heal must be in the ledger, with 0 failed
requests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiln.adapters.secrets.filestore import FileSecretStore
from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.core.digest import hex_of
from kiln.core.runtime.model import (
    LABEL_ENV,
    InstanceId,
    State,
)
from kiln.core.spec.loader import load_spec
from kiln.core.traffic.table import Backend, RouteTable
from kiln.core.traffic.table import Release as RouteRelease
from kiln.ports.clock import SystemClock
from kiln.ports.secrets import SecretValue
from kiln.services.controller import Controller
from tests.drift_rig import DriftRig, drift_rig
from tests.e2e.test_rollout_executor import V1, Traffic, versions_served
from tests.integration.traffic.conftest import Processes, start_router

pytestmark = pytest.mark.e2e

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: prod
    replicas: 2
    health: {interval: 50ms, startTimeout: 20s}
    secrets: {DB_PASSWORD: {key: db-password}}
    strategy:
      canary:
        steps:
          - setWeight: 100
"""
)
ENV = "prod"


@dataclass(kw_only=True)
class World(DriftRig):
    """The shared drift rig on the embedded router, with its secret store."""

    store: FileSecretStore
    router_port: int
    router: EmbeddedRouterClient

    def running(self) -> list[str]:
        return sorted(
            i.id.value
            for i in self.provider.list({"dev.kiln.environment": ENV})
            if i.state is State.RUNNING
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    procs = Processes()
    router_proc = start_router(procs, tmp_path)
    client = EmbeddedRouterClient(socket_path=router_proc.admin)
    (tmp_path / ".kiln").mkdir(mode=0o700)
    store = FileSecretStore.in_state_dir(tmp_path / ".kiln")
    store.put("db-password", SecretValue("first"))
    try:
        with drift_rig(tmp_path, SPEC, client, unpacked=True, secret_store=store) as rig:
            yield World(**vars(rig), store=store, router_port=router_proc.port, router=client)
    finally:
        client.close()
        procs.stop_all()


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class OneLeader:
    def try_acquire(self, environment: str, *, above: int = 0) -> bool:
        return True

    def epoch(self, environment: str) -> int | None:
        return None  # unfenced: this test is about healing, not about terms

    def release(self, environment: str) -> None:
        pass

    def held(self) -> frozenset[str]:
        return frozenset({ENV})


def test_a_fresh_deployment_reports_clean_100_times_in_a_row(world: World) -> None:
    world.deploy()
    for n in range(100):
        result = world.reconciler.scan(ENV)
        assert result.clean, (n, [f.reason for f in result.findings])
    assert world.findings() == []


def test_kill_9_is_healed_by_the_controller_loop_within_one_interval(world: World) -> None:
    world.deploy()
    before = world.running()
    controller = Controller(
        spec=SPEC,
        leader=OneLeader(),
        clock=SystemClock(),
        address="test",
        desired=world.desired,
        executors={ENV: world.executor},
        reconcilers={ENV: world.reconciler},
        heal_interval=0.5,
    )
    controller.claim_environments()
    try:
        with Traffic(world.router_port) as traffic:
            time.sleep(0.5)
            victim = world.reconciler._provider.list({"dev.kiln.instance": before[0]})[0]
            assert victim.pid is not None
            killed = time.monotonic()
            os.killpg(victim.pid, signal.SIGKILL)
            wait_for(lambda: any(h["kind"] == "replace" for h in world.heals()))
            healed = time.monotonic() - killed
            wait_for(lambda: world.reconciler.scan(ENV).clean)
            time.sleep(0.5)
        print(f"\nkill -9 -> replaced in {healed:.2f} s; {traffic.ok} requests, 0 failed")
    finally:
        controller.stop()
    assert traffic.failures == [] and traffic.server_errors == 0 and traffic.ok > 20
    after = world.running()
    assert len(after) == 2 and before[0] not in after and before[1] in after
    found = {str(f["kind"]): f for f in world.findings()}
    assert found["dead"]["instance"] == before[0]
    assert set(found) <= {"dead", "route"}  # the dead backend may still be in the table
    assert any(h["kind"] == "replace" and h["instance"] == before[0] for h in world.heals())
    assert healed < 0.5 + 20  # one interval plus the replacement's start
    assert versions_served(world.router_port) == {"1.0.0"}


def test_an_edited_file_in_the_unpacked_tree_is_healed_by_a_fresh_unpack(world: World) -> None:
    world.deploy()
    before = world.running()
    app = world.state / "instances" / hex_of(V1) / "rootfs" / "app" / "app.py"
    with Traffic(world.router_port) as traffic:
        app.chmod(0o644)
        app.write_text(app.read_text() + "\n# tampered\n")
        report = world.reconciler.reconcile(ENV)
        time.sleep(0.3)
    assert traffic.failures == [] and traffic.server_errors == 0
    (finding,) = report["findings"]
    assert finding["kind"] == "tampered-tree" and finding["paths"] == ["app/app.py"]
    kinds = [h["kind"] for h in report["healed"]]
    assert kinds[0] == "reunpack" and kinds.count("replace") == 2
    after = world.running()
    assert len(after) == 2 and not set(after) & set(before)  # every user of the tree replaced
    assert "# tampered" not in app.read_text()  # a fresh unpack
    assert world.reconciler.scan(ENV).clean
    assert [f["kind"] for f in world.findings()] == ["tampered-tree"]
    assert len(world.heals()) == len(report["healed"])


def test_a_route_weight_changed_behind_kilns_back_is_reapplied(world: World) -> None:
    world.deploy()
    current = world.router.current()
    assert current is not None
    (release,) = current.releases
    first, second = release.backends
    rogue = RouteTable(
        current.generation + 1,
        ENV,
        (
            RouteRelease(release.name, 90, (first,)),
            RouteRelease("rel-rogue", 10, (Backend(second.host, second.port),)),
        ),
    )
    with Traffic(world.router_port) as traffic:
        world.router.apply(rogue)
        time.sleep(0.3)
        report = world.reconciler.reconcile(ENV)
        time.sleep(0.3)
    assert traffic.failures == [] and traffic.server_errors == 0
    (finding,) = report["findings"]
    assert finding["kind"] == "route"
    assert "has weight 90, declared 100" in str(finding["reason"])
    assert "routes 10% to undeclared release rel-rogue" in str(finding["reason"])
    assert [h["kind"] for h in report["healed"]] == ["reapply-route"]
    healed = world.router.current()
    assert healed is not None and [(r.name, r.weight) for r in healed.releases] == [
        (release.name, 100)
    ]
    assert set(healed.releases[0].backends) == {first, second}
    assert world.reconciler.scan(ENV).clean


def test_an_impostor_with_kilns_labels_is_reported_and_never_touched(world: World) -> None:
    world.deploy()
    some = world.reconciler._provider.list({"dev.kiln.environment": ENV})[0]
    labels = dict(some.labels) | {"dev.kiln.instance": "hello-prod-1badc0de"}
    impostor = subprocess.Popen(
        [sys.executable, "-S", "-c", "import time; time.sleep(60)"],
        env={LABEL_ENV[key]: value for key, value in labels.items()},
        start_new_session=True,
    )
    try:
        wait_for(lambda: not world.reconciler.scan(ENV).clean)
        report = world.reconciler.reconcile(ENV)
        again = world.reconciler.reconcile(ENV)
        assert impostor.poll() is None  # kiln does not kill what it did not start
    finally:
        impostor.kill()
        impostor.wait()
    (finding,) = report["findings"]
    assert finding["kind"] == "impostor" and finding["instance"] == "hello-prod-1badc0de"
    assert report["actions"] == [] and report["healed"] == []
    assert again["findings"] == report["findings"]
    assert [f["kind"] for f in world.findings()] == ["impostor"]  # recorded once
    assert InstanceId("hello-prod-1badc0de").value in str(finding["reason"])


def test_a_secret_rotated_in_the_store_replaces_every_instance(world: World) -> None:
    world.deploy()
    before = world.running()
    assert world.reconciler.scan(ENV).clean
    with Traffic(world.router_port) as traffic:
        assert world.store.put("db-password", SecretValue("second")) == 2
        report = world.reconciler.reconcile(ENV)
        time.sleep(0.3)
    assert traffic.failures == [] and traffic.server_errors == 0
    kinds = sorted(str(f["kind"]) for f in report["findings"])
    assert kinds == ["secret-version", "secret-version"]
    assert "secret DB_PASSWORD version 1, the store now holds version 2" in str(
        report["findings"][0]["reason"]
    )
    after = world.running()
    assert len(after) == 2 and not set(after) & set(before)
    versions = {
        i.secrets.get("DB_PASSWORD")
        for i in world.reconciler._provider.list({"dev.kiln.environment": ENV})
    }
    assert versions == {2}
    assert world.reconciler.scan(ENV).clean
    assert "second" not in repr(world.ledger.events) and "first" not in repr(world.ledger.events)


def test_an_orphan_of_this_state_dir_is_reaped(world: World) -> None:
    world.deploy()
    some = world.reconciler._provider.list({"dev.kiln.environment": ENV})[0]
    labels = dict(some.labels) | {"dev.kiln.instance": "hello-prod-0badc0de"}
    env = {LABEL_ENV[key]: value for key, value in labels.items()}
    orphan = subprocess.Popen(
        [sys.executable, "-S", "-c", "import time; time.sleep(60)"],
        env=env | {"KILN_OWNER": str(world.state.resolve())},
        start_new_session=True,
    )
    try:
        wait_for(lambda: not world.reconciler.scan(ENV).clean)
        report = world.reconciler.reconcile(ENV)
        assert orphan.wait(timeout=15) is not None  # reaped: it carried our owner marker
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait()
    (finding,) = report["findings"]
    assert finding["kind"] == "orphan" and finding["instance"] == "hello-prod-0badc0de"
    assert [h["kind"] for h in report["healed"]] == ["destroy"]
    assert world.reconciler.scan(ENV).clean
