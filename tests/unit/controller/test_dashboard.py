"""The dashboard's snapshot (``kiln.services.dashboard``) and its routes, with fakes."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiln.adapters.keys.tokens import (
    ensure_local_admin,
    ensure_local_reader,
    load_table,
    read_reader_token,
)
from kiln.adapters.store.leader import FileLeaderLock
from kiln.api.app import create_app
from kiln.api.dashboard import CSP, configure, read_only
from kiln.core.access import Identity, Role, TokenEntry, TokenTable, token_digest
from kiln.core.ledger.events import Event
from kiln.core.ledger.kinds import EventKind
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.core.runtime.model import ENVIRONMENT, RELEASE, Instance, InstanceId, State
from kiln.core.spec.models import Environment
from kiln.core.traffic.metrics import BackendHealth, DataPlaneHealth
from kiln.core.traffic.table import Backend, HeaderMatch, RouteTable
from kiln.core.traffic.table import Release as Route
from kiln.errors import IntegrityError, Temporary
from kiln.ports.clock import SystemClock
from kiln.services.controller import Controller
from kiln.services.dashboard import (
    ArtifactFacts,
    Dashboard,
    EnvironmentPorts,
    LedgerCheck,
    LedgerWatch,
    deadlines,
    instances_json,
    step_list,
)
from tests.unit.artifacts.fakes import FrozenClock
from tests.unit.runtime.fakes import FakeProvider
from tests.unit.traffic.fake_router import FakeRouter

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
T0 = datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC)


# --- pure parts, as tables ------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "step", "expected"),
    [
        ("provisioning", 0, ["pending", "pending", "pending"]),
        ("stepping", 0, ["current", "pending", "pending"]),
        ("stepping", 1, ["done", "current", "pending"]),
        ("stepping", 3, ["done", "done", "done"]),
        ("succeeded", 1, ["done", "done", "done"]),
        ("rolling-back", 1, ["done", "stopped", "skipped"]),
        ("rolled-back", 2, ["done", "done", "stopped"]),
    ],
)
def test_each_step_is_marked_by_where_the_rollout_is(
    phase: str, step: int, expected: list[str]
) -> None:
    names = ["setWeight 50", "pause until promoted", "setWeight 100"]
    marked = step_list(names, phase, step)
    assert [s["state"] for s in marked] == expected
    assert [s["name"] for s in marked] == names


def _env(**rollback: object) -> Environment:
    return Environment.model_validate(
        {
            "name": "prod",
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}},
            "rollback": rollback,
        }
    )


def _state(phase: Phase, *, step_started: float | None = None) -> RolloutState:
    return RolloutState(
        "prod", "rel-b", "rel-a", phase, started=T0.timestamp(), step_started=step_started
    )


def test_deadlines_follow_the_planners_rules() -> None:
    env = _env(progressDeadline="10m", stepDeadline="30s")
    stepping = _state(Phase.STEPPING, step_started=T0.timestamp() + 5)
    assert deadlines(stepping, env) == {
        "progress": "2026-01-02T03:10:00+00:00",
        "step": "2026-01-02T03:00:35+00:00",
    }
    assert deadlines(_state(Phase.PROVISIONING), env)["step"] is None
    assert deadlines(_state(Phase.SUCCEEDED), env) == {"progress": None, "step": None}
    assert deadlines(stepping, _env())["step"] is None  # no step deadline declared
    assert deadlines(None, env) == {"progress": None, "step": None}


def _instance(token: str, release: str, port: int, state: State = State.RUNNING) -> Instance:
    return Instance(
        id=InstanceId(f"hello-prod-{token}"),
        state=state,
        labels={ENVIRONMENT: "prod", RELEASE: release},
        port=port,
    )


def test_instance_health_joins_the_provider_and_the_routers_view() -> None:
    table = RouteTable(
        3,
        "prod",
        (
            Route("rel-a", 50, (Backend("127.0.0.1", 20001), Backend("127.0.0.1", 20002))),
            Route("rel-b", 50, (Backend("127.0.0.1", 20003),)),
        ),
    )
    health = DataPlaneHealth(
        True,
        3,
        (
            BackendHealth("rel-a", "127.0.0.1:20001", True, 0),
            BackendHealth("rel-a", "127.0.0.1:20002", False, 4),
        ),
    )
    listed = [
        _instance("0000000a", "rel-a", 20001),
        _instance("0000000b", "rel-a", 20002),
        _instance("0000000c", "rel-b", 20003),  # routed, not yet seen by passive health
        _instance("0000000d", "rel-b", 20004),  # running, in no route
        _instance("0000000e", "rel-b", 20005, State.DEAD),
    ]
    shown = {
        i["id"][-1]: (i["health"], i["failures"]) for i in instances_json(listed, table, health)
    }
    assert shown == {
        "a": ("serving", 0),
        "b": ("failing", 4),
        "c": ("serving", 0),
        "d": ("not routed", 0),
        "e": ("dead", 0),
    }


# --- the snapshot ---------------------------------------------------------------------


@dataclass
class MemoryEvents:
    """Just enough of ``EventLog`` for the dashboard: size, events, query."""

    stored: list[Event] = field(default_factory=list)

    def add(self, kind: EventKind, **fields: Any) -> None:
        self.stored.append(Event(len(self.stored), T0, kind, "ci", **fields))

    def size(self) -> int:
        return len(self.stored)

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        yield from self.stored[start:stop]

    def query(self, *, environment: str | None = None, kinds: Any = None, **_: Any) -> list[Event]:
        return [
            e
            for e in self.stored
            if environment in (None, e.environment) and (kinds is None or e.kind in kinds)
        ]


class Clock(FrozenClock):
    tick: float = 1000.0

    def monotonic(self) -> float:
        return self.tick


def _status(phase: str = "stepping") -> dict[str, Any]:
    release_a = {"id": "rel-a", "artifact": A, "config": B}
    release_b = {"id": "rel-b", "artifact": B, "config": B}
    return {
        "version": "0.1.0",
        "service": "hello",
        "started": T0.isoformat(),
        "environments": [
            {
                "name": "prod",
                "leader": True,
                "url": "http://127.0.0.1:8080",
                "stable": release_a,
                "note": "paused",
                "error": "",
                "rollout": {
                    "phase": phase,
                    "step": 1,
                    "weight": 50,
                    "candidate": release_b,
                    "stable": release_a,
                    "steps": ["setWeight 50", "pause until promoted", "setWeight 100"],
                    "analysis": {"errors": {"rate": 0.01, "samples": 40.0}},
                    "reason": "",
                    "fastTrack": False,
                    "started": T0.timestamp(),
                },
            }
        ],
    }


@pytest.fixture
def parts() -> dict[str, Any]:
    provider = FakeProvider()
    provider.instances = {
        i.id: i
        for i in (_instance("0000000a", "rel-a", 20001), _instance("0000000b", "rel-b", 20002))
    }
    router = FakeRouter()
    router.apply(
        RouteTable(
            1,
            "prod",
            (
                Route("rel-a", 50, (Backend("127.0.0.1", 20001),)),
                Route("rel-b", 50, (Backend("127.0.0.1", 20002),)),
            ),
            rules=(HeaderMatch("x-kiln-preview", "1", "rel-b"),),
        )
    )
    events = MemoryEvents()
    for kind in (EventKind.BUILD, EventKind.DEPLOY_START, EventKind.ROLLOUT_STEP):
        events.add(kind, environment=None if kind is EventKind.BUILD else "prod", artifact=B)
    calls: list[str] = []
    status = _status()

    def get_status() -> dict[str, Any]:
        calls.append("status")
        return status

    return {
        "provider": provider,
        "router": router,
        "events": events,
        "calls": calls,
        "status": status,
        "clock": Clock(),
        "get_status": get_status,
    }


def _dashboard(parts: dict[str, Any], **overrides: Any) -> Dashboard:
    env = _env(stepDeadline="1m")
    arguments: dict[str, Any] = {
        "status": parts["get_status"],
        "environments": {"prod": EnvironmentPorts(env, parts["provider"], parts["router"])},
        "desired": None,
        "events": parts["events"],
        "check_ledger": lambda: LedgerCheck(True, 3, T0.isoformat(), "3 events"),
        "artifact_facts": lambda digest: ArtifactFacts("1.2.0" if digest == B else "1.1.0", ("v",)),
        "clock": parts["clock"],
        "recent": 2,
    }
    arguments.update(overrides)
    return Dashboard(**arguments)


def test_the_snapshot_shows_release_rollout_weights_instances_ledger_and_dora(
    parts: dict[str, Any],
) -> None:
    view = _dashboard(parts).snapshot()
    (env,) = view["environments"]
    assert env["stable"] == {
        "id": "rel-a",
        "artifact": A,
        "config": B,
        "short": "a" * 12,
        "version": "1.1.0",
        "tags": ["v"],
    }
    rollout = env["rollout"]
    assert rollout["candidate"]["version"] == "1.2.0"
    assert [s["state"] for s in rollout["steps"]] == ["done", "current", "pending"]
    assert rollout["analysis"] == {"errors": {"rate": 0.01, "samples": 40.0}}
    assert rollout["strategy"] == "canary"
    assert env["weights"] == [
        {"release": "rel-a", "weight": 50, "role": "stable", "backends": 1, "preview": False},
        {"release": "rel-b", "weight": 50, "role": "candidate", "backends": 1, "preview": True},
    ]
    assert [(i["release"], i["health"]) for i in env["instances"]] == [
        ("rel-a", "serving"),
        ("rel-b", "serving"),
    ]
    assert env["dataPlane"]["serving"] is True
    assert env["dora"]["environment"] == "prod"
    assert set(env["dora"]) >= {"deploymentFrequency", "leadTime", "changeFailureRate"}
    ledger = view["ledger"]
    assert ledger["verified"] is True and ledger["size"] == 3
    assert [e["seq"] for e in ledger["events"]] == [2, 1]  # newest first, `recent` of them
    assert ledger["events"][0]["kind"] == "rollout.step"
    assert ledger["events"][0]["artifact"] == "b" * 12
    json.dumps(view)  # plain JSON all the way down


def test_snapshots_are_shared_for_the_refresh_interval(parts: dict[str, Any]) -> None:
    dashboard = _dashboard(parts, refresh=0.5)
    first = dashboard.snapshot()
    assert dashboard.snapshot() is first
    parts["clock"].tick += 0.6
    assert dashboard.snapshot() is not first
    assert parts["calls"] == ["status", "status"]


def test_a_failing_router_shows_as_that_environments_error_not_a_blank_page(
    parts: dict[str, Any],
) -> None:
    def down() -> None:
        raise Temporary("router admin socket refused the connection")

    parts["router"].current = down
    (env,) = _dashboard(parts).snapshot()["environments"]
    assert env["dataPlane"] == {
        "serving": False,
        "generation": None,
        "detail": "router admin socket refused the connection",
    }
    assert env["weights"] == []
    assert len(env["instances"]) == 2  # the provider still answered
    assert env["rollout"]["steps"]


def test_an_open_preview_port_shows_its_url_and_none_otherwise(parts: dict[str, Any]) -> None:
    (env,) = _dashboard(parts).snapshot()["environments"]
    assert env["previewUrl"] is None
    parts["status"]["environments"][0]["previewUrl"] = "http://127.0.0.1:9001"
    (env,) = _dashboard(parts).snapshot()["environments"]
    assert env["previewUrl"] == "http://127.0.0.1:9001"


def test_a_rolled_back_rollout_keeps_its_reason_and_stops_at_its_step(
    parts: dict[str, Any],
) -> None:
    parts["status"]["environments"][0]["rollout"].update(
        phase="rolled-back", reason="analysis failed: errors 5.1% > 1%"
    )
    (env,) = _dashboard(parts).snapshot()["environments"]
    assert env["rollout"]["reason"] == "analysis failed: errors 5.1% > 1%"
    assert [s["state"] for s in env["rollout"]["steps"]] == ["done", "stopped", "skipped"]
    assert env["rollout"]["deadlines"] == {"progress": None, "step": None}


def test_the_ledger_is_reverified_when_it_grows_and_when_the_check_is_stale() -> None:
    clock = Clock()
    size = [3]
    runs: list[int] = []

    def verify() -> tuple[bool, int, str]:
        runs.append(size[0])
        if size[0] > 4:
            raise IntegrityError("a checkpoint's signature does not verify")
        return True, size[0], f"{size[0]} events"

    watch = LedgerWatch(verify, size=lambda: size[0], clock=clock, every=5, stale=60)
    assert watch().verified is True
    size[0] = 4
    clock.tick += 1
    assert watch().size == 3 and runs == [3]  # grew, but checked under 5 s ago: reused
    clock.tick += 5
    assert watch().size == 4 and runs == [3, 4]
    clock.tick += 30
    assert watch().size == 4 and runs == [3, 4]  # nothing new, not stale: reused
    clock.tick += 61
    watch()
    assert runs == [3, 4, 4]  # stale: checked again though nothing changed
    size[0] = 5
    clock.tick += 5
    failed = watch()
    assert failed.verified is False
    assert "signature" in failed.detail


# --- the routes -----------------------------------------------------------------------

READER, ADMIN = "kiln_reader", "kiln_admin"
TOKENS = TokenTable(
    [
        TokenEntry("viewer", token_digest(READER), Role.READ),
        TokenEntry("ops", token_digest(ADMIN), Role.ADMIN),
    ]
)


def _app(tmp_path: Path, parts: dict[str, Any] | None = None, listener: Any = None) -> Any:
    controller = Controller(
        spec=None, leader=FileLeaderLock(tmp_path), clock=SystemClock(), address="test"
    )
    app = create_app(controller=controller, tokens=TOKENS)
    if parts is not None:
        configure(app, source=_dashboard(parts), open_listener=listener or (lambda: "x"))
    return app


def _call(app: Any, method: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kiln") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(go())


def test_the_data_needs_a_read_token_and_carries_no_secret(
    tmp_path: Path, parts: dict[str, Any]
) -> None:
    app = _app(tmp_path, parts)
    assert _call(app, "GET", "/v1/dashboard").status_code == 401
    assert _call(app, "GET", "/v1/dashboard", "kiln_wrong").status_code == 401
    answer = _call(app, "GET", "/v1/dashboard", READER)
    assert answer.status_code == 200
    assert answer.json()["environments"][0]["name"] == "prod"
    assert answer.headers["cache-control"] == "no-store"
    assert READER not in answer.text and ADMIN not in answer.text


def test_a_bare_controller_still_answers_the_dashboard(tmp_path: Path) -> None:
    answer = _call(_app(tmp_path), "GET", "/v1/dashboard", READER).json()
    assert answer["environments"] == []
    assert answer["ledger"]["verified"] is None


def test_opening_the_browser_listener_is_for_admins_and_answers_a_url_only(
    tmp_path: Path, parts: dict[str, Any]
) -> None:
    app = _app(tmp_path, parts, listener=lambda: "http://127.0.0.1:4321/ui/")
    assert _call(app, "POST", "/v1/dashboard/listener").status_code == 401
    assert _call(app, "POST", "/v1/dashboard/listener", READER).status_code == 403
    answer = _call(app, "POST", "/v1/dashboard/listener", ADMIN)
    assert answer.json() == {"url": "http://127.0.0.1:4321/ui/"}
    bare = _call(_app(tmp_path), "POST", "/v1/dashboard/listener", ADMIN)
    assert bare.status_code == 409
    assert "cannot open a dashboard listener" in bare.json()["detail"]


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/ui/", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")],
)
def test_the_page_is_served_without_a_token_with_strict_headers(
    tmp_path: Path, path: str, kind: str
) -> None:
    answer = _call(_app(tmp_path), "GET", path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(kind)
    assert answer.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert "unsafe-inline" not in CSP
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"


def test_the_page_holds_no_data_and_no_inline_script(tmp_path: Path) -> None:
    page = _call(_app(tmp_path), "GET", "/ui/").text
    assert '<script src="app.js" defer></script>' in page
    assert page.count("<script") == 1  # the CSP would refuse an inline one anyway
    assert " style=" not in page and "<style" not in page
    assert "sha256:" not in page and "prod" not in page


@pytest.mark.parametrize("path", ["/ui/app.py", "/ui/..%2f..%2fapp.py", "/ui/index.htm"])
def test_only_the_dashboards_own_files_are_served(tmp_path: Path, path: str) -> None:
    assert _call(_app(tmp_path), "GET", path).status_code == 404


def test_the_browser_listener_is_read_only(tmp_path: Path, parts: dict[str, Any]) -> None:
    app = read_only(_app(tmp_path, parts))
    refused = _call(app, "POST", "/v1/environments/prod/abort", ADMIN)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
    assert refused.headers["content-security-policy"] == CSP
    assert _call(app, "GET", "/v1/dashboard", READER).status_code == 200


def test_the_local_reader_token_is_read_only_stable_and_private(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "run").mkdir()
    admin = ensure_local_admin(tmp_path)
    reader = ensure_local_reader(tmp_path)
    assert reader != admin
    assert read_reader_token(tmp_path) == reader
    assert ensure_local_reader(tmp_path) == reader  # stable across restarts
    assert ensure_local_admin(tmp_path) == admin
    table = load_table(tmp_path)
    assert table.authenticate(f"Bearer {reader}") == Identity("local-dashboard", Role.READ)
    token_file = tmp_path / "run" / "dashboard.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert reader not in (tmp_path / "keys" / "api-tokens.json").read_text()


def test_a_fresh_baseline_group_is_shown_in_its_role(parts: dict[str, Any]) -> None:
    parts["router"].apply(
        RouteTable(
            2,
            "prod",
            (
                Route("rel-a", 50, (Backend("127.0.0.1", 20001),)),
                Route("rel-a+baseline", 25, (Backend("127.0.0.1", 20003),)),
                Route("rel-b", 25, (Backend("127.0.0.1", 20002),)),
            ),
        )
    )
    (env,) = _dashboard(parts).snapshot()["environments"]
    assert [(w["release"], w["weight"], w["role"]) for w in env["weights"]] == [
        ("rel-a", 50, "stable"),
        ("rel-a+baseline", 25, "baseline"),
        ("rel-b", 25, "candidate"),
    ]
