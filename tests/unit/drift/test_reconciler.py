"""The reconciler behind the real ports, with in-memory fakes; and the CLI through the API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.api.app import create_app
from kiln.cli.main import main
from kiln.core.access import Role, TokenEntry, TokenTable, token_digest
from kiln.core.digest import digest_bytes
from kiln.core.ledger.kinds import EventKind
from kiln.core.runtime.model import State
from kiln.core.spec.loader import load_spec
from kiln.core.traffic.table import Backend, RouteTable
from kiln.core.traffic.table import Release as RouteRelease
from kiln.ports.clock import SystemClock
from kiln.services.controller import Controller
from kiln.services.reconcile import Reconciler
from kiln.services.rollout import RolloutExecutor
from tests.unit.rollout.fakes import launcher
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.traffic.fake_router import FakeRouter

SPEC = load_spec(
    b"""\
service: hello
environments:
  - name: prod
    replicas: 2
    strategy: {canary: {steps: [{setWeight: 100}]}}
  - name: lab
    replicas: 1
    selfHeal: false
    strategy: {canary: {steps: [{setWeight: 100}]}}
"""
)
V1 = digest_bytes(b"v1")


@dataclass
class Ledger:
    events: list[dict[str, Any]] = field(default_factory=list)

    def record(self, kind: EventKind, *, actor: str, **fields: Any) -> int:
        assert isinstance(kind, EventKind) and actor
        self.events.append({"kind": str(kind), **fields})
        return len(self.events)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e["details"] for e in self.events if e["kind"] == kind]


@dataclass
class Rig:
    provider: FakeProvider
    router: FakeRouter
    desired: SqliteDesiredState
    ledger: Ledger
    executors: dict[str, RolloutExecutor]
    reconcilers: dict[str, Reconciler]
    tampered: dict[str, tuple[str, ...]]
    refreshed: list[str]

    def deploy(self, env: str) -> None:
        self.executors[env].start(env, V1)
        state = self.executors[env].run(env, timeout=10)
        assert state.phase.terminal and str(state.phase) == "succeeded"

    def running(self, env: str) -> list[str]:
        return sorted(
            i.id.value
            for i in self.provider.list({"dev.kiln.environment": env})
            if i.state is State.RUNNING
        )


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    provider, ledger = FakeProvider(), Ledger()
    desired = SqliteDesiredState(tmp_path / "state.db")
    tampered: dict[str, tuple[str, ...]] = {}
    refreshed: list[str] = []

    launch = launcher(tmp_path)

    def refresh(artifact: str) -> None:
        refreshed.append(artifact)
        tampered.pop(artifact, None)

    executors, reconcilers, routers = {}, {}, {}
    for env in SPEC.environments:
        routers[env.name] = FakeRouter()
        executors[env.name] = RolloutExecutor(
            spec=SPEC,
            desired=desired,
            provider=provider,
            router=routers[env.name],
            recorder=ledger,
            clock=SystemClock(),
            launcher=launch,
            actor="test",
        )
        reconcilers[env.name] = Reconciler(
            spec=SPEC,
            desired=desired,
            provider=provider,
            router=routers[env.name],
            recorder=ledger,
            executor=executors[env.name],
            actor="test",
            verify_tree=lambda artifact: tampered.get(artifact, ()),
            refresh_tree=refresh,
        )
    try:
        yield Rig(
            provider, routers["prod"], desired, ledger, executors, reconcilers, tampered, refreshed
        )
    finally:
        desired.close()


def test_a_dead_instance_is_recorded_once_and_replaced(rig: Rig) -> None:
    rig.deploy("prod")
    first, second = rig.running("prod")
    rig.provider.set_state(next(i for i in rig.provider.instances if i.value == first), State.DEAD)
    report = rig.reconcilers["prod"].reconcile("prod")
    assert [f["kind"] for f in report["findings"]] == ["dead", "route"]
    assert [h["kind"] for h in report["healed"]] == ["replace", "reapply-route"]
    after = rig.running("prod")
    assert first not in after and second in after and len(after) == 2
    assert [f["kind"] for f in rig.ledger.of("drift.found")] == ["dead", "route"]
    assert len(rig.ledger.of("heal")) == 2
    table = rig.router.current()
    assert table is not None
    assert {b.port for b in table.releases[0].backends} == {
        i.port for i in rig.provider.list() if i.id.value in after
    }
    assert rig.reconcilers["prod"].scan("prod").clean


def test_dry_run_changes_nothing_and_a_clean_environment_records_nothing(rig: Rig) -> None:
    rig.deploy("prod")
    assert rig.reconcilers["prod"].reconcile("prod")["clean"] is True
    assert rig.ledger.of("drift.found") == []
    victim = next(iter(rig.provider.instances))
    rig.provider.destroy(victim, drain_timeout=0)
    report = rig.reconcilers["prod"].reconcile("prod", dry_run=True)
    assert report["healed"] == [] and report["dryRun"] is True
    assert [a["kind"] for a in report["actions"]] == ["provision", "reapply-route"]
    assert len(rig.running("prod")) == 1
    assert rig.ledger.of("heal") == []


def test_tampering_reunpacks_before_replacing(rig: Rig) -> None:
    rig.deploy("prod")
    before = rig.running("prod")
    rig.tampered[str(V1)] = ("app/app.py",)
    report = rig.reconcilers["prod"].reconcile("prod")
    assert rig.refreshed == [str(V1)]
    assert report["healed"][0]["kind"] == "reunpack"
    assert not set(rig.running("prod")) & set(before)


def test_self_heal_off_is_reported_not_healed(rig: Rig) -> None:
    rig.deploy("lab")
    victim = next(i for i in rig.provider.instances if "-lab-" in i.value)
    rig.provider.destroy(victim, drain_timeout=0)
    report = rig.reconcilers["lab"].reconcile("lab")
    assert [a["kind"] for a in report["actions"]] == ["report-only"]
    assert report["healed"] == [] and rig.running("lab") == []
    assert rig.ledger.of("drift.found")[0]["kind"] == "missing"


def test_a_paused_environment_is_reported_not_healed(rig: Rig) -> None:
    rig.deploy("prod")
    rig.desired.set_paused("prod", True)
    rig.provider.destroy(next(iter(rig.provider.instances)), drain_timeout=0)
    report = rig.reconcilers["prod"].reconcile("prod")
    assert "is paused" in report["actions"][0]["reason"] and report["healed"] == []


def test_a_route_changed_behind_kilns_back_is_reapplied(rig: Rig) -> None:
    rig.deploy("prod")
    table = rig.router.current()
    assert table is not None
    (release,) = table.releases
    a, b = release.backends
    rig.router.apply(
        RouteTable(
            table.generation + 1,
            "prod",
            (
                RouteRelease(release.name, 80, (a,)),
                RouteRelease("rel-x", 20, (Backend(b.host, b.port),)),
            ),
        )
    )
    report = rig.reconcilers["prod"].reconcile("prod")
    assert "weight 80, declared 100" in report["findings"][0]["reason"]
    healed = rig.router.current()
    assert healed is not None and [(r.name, r.weight) for r in healed.releases] == [
        (release.name, 100)
    ]


# --- the CLI through the API ------------------------------------------------------------

TOKENS = TokenTable([TokenEntry("ops", token_digest("kiln_ops"), Role.ADMIN)])


class Leader:
    def try_acquire(self, environment: str, *, above: int = 0) -> bool:
        return True

    def epoch(self, environment: str) -> int | None:
        return None  # unfenced: this test is about the API, not about terms

    def release(self, environment: str) -> None:
        pass

    def held(self) -> frozenset[str]:
        return frozenset({"prod", "lab"})


class ApiClient:
    """What the CLI's controller client does, against the ASGI app in-process."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            headers = {"Authorization": "Bearer kiln_ops"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://kiln", headers=headers
            ) as client:
                return await client.request(method, path, json=body)

        response = asyncio.run(go())
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, body)

    def close(self) -> None:
        pass


def test_kiln_drift_and_reconcile_through_the_controller_api(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rig.deploy("prod")
    controller = Controller(
        spec=SPEC,
        leader=Leader(),
        clock=SystemClock(),
        address="test",
        desired=rig.desired,
        executors=rig.executors,
        reconcilers={"prod": rig.reconcilers["prod"]},
    )
    app = create_app(controller=controller, tokens=TOKENS)
    client = ApiClient(app)
    monkeypatch.setattr("kiln.cli.drift._client", lambda _app: client)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kiln.yaml").write_text("service: hello\n")

    assert main(["drift", "prod"]) == 0
    assert capsys.readouterr().out == "prod: clean\n"

    victim = next(iter(rig.provider.instances))
    rig.provider.set_state(victim, State.DEAD)
    assert main(["drift", "prod"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "prod: 2 finding(s)"
    assert out[1].split()[:1] == ["dead"] and victim.value in out[1]
    assert out[3] == f"  would replace {victim.value} (dead)"

    assert main(["reconcile", "prod", "--dry-run"]) == 0
    assert victim.value in rig.running("prod") or victim in rig.provider.instances
    capsys.readouterr()
    assert main(["reconcile", "prod"]) == 0
    assert f"  healed: replace {victim.value} (dead)" in capsys.readouterr().out
    assert main(["drift", "-o", "json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["clean"] is True and [e["environment"] for e in data["environments"]] == ["prod"]


def test_store_versions_follow_only_unpinned_store_secrets() -> None:
    from kiln.core.spec.models import Environment
    from kiln.ports.secrets import SecretInfo
    from kiln.services.reconcile import store_versions

    class Store:
        def list(self) -> list[SecretInfo]:
            return [SecretInfo("db", (1, 2, 3), "t"), SecretInfo("api", (1,), "t")]

    env = Environment.model_validate(
        {
            "name": "prod",
            "secrets": {
                "DB": {"key": "db"},
                "API": {"key": "api", "version": 1},
                "HOME_DIR": {"from": "env", "key": "HOME"},
                "GONE": {"key": "missing"},
            },
        }
    )
    assert store_versions(Store())(env) == {"DB": 3}  # type: ignore[arg-type]
