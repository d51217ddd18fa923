"""API tokens: only digests are stored, and only a known bearer token is anyone."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import httpx
import pytest

from kiln.adapters.keys.tokens import ensure_local_admin, issue, load_table
from kiln.adapters.store.leader import FileLeaderLock
from kiln.api.app import create_app
from kiln.core.access import Identity, Role, TokenEntry, TokenTable, token_digest
from kiln.ports.clock import SystemClock
from kiln.services.controller import Controller

TABLE = TokenTable([TokenEntry("ci", token_digest("kiln_secret"), Role.READ)])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer kiln_secret", Identity("ci", Role.READ)),
        ("bearer kiln_secret", Identity("ci", Role.READ)),
        ("Bearer kiln_wrong", None),
        ("Basic kiln_secret", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_only_a_known_bearer_token_authenticates(
    header: str | None, expected: Identity | None
) -> None:
    assert TABLE.authenticate(header) == expected


def test_the_token_table_stores_digests_only(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "run").mkdir()
    admin = ensure_local_admin(tmp_path)
    ci = issue(tmp_path, "ci", Role.READ)
    stored = (tmp_path / "keys" / "api-tokens.json").read_text()
    assert admin not in stored and ci not in stored
    assert stat.S_IMODE((tmp_path / "keys" / "api-tokens.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "run" / "controller.token").stat().st_mode) == 0o600
    table = load_table(tmp_path)
    assert table.authenticate(f"Bearer {ci}") == Identity("ci", Role.READ)
    assert ensure_local_admin(tmp_path) == admin  # stable across restarts
    assert [t["name"] for t in json.loads(stored)["tokens"]] == ["local-admin", "ci"]


def test_every_v1_route_checks_who_is_asking(tmp_path: Path) -> None:
    tokens = TokenTable(
        [
            TokenEntry("ci", token_digest("kiln_reader"), Role.READ),
            TokenEntry("ops", token_digest("kiln_admin"), Role.ADMIN),
        ]
    )
    controller = Controller(
        spec=None, leader=FileLeaderLock(tmp_path), clock=SystemClock(), address="test"
    )
    app = create_app(controller=controller, tokens=tokens)
    routes = [
        (method, r.path.replace("{name}", "dev"))
        for r in app.routes
        if getattr(r, "path", "").startswith("/v1/") and r.path != "/v1/openapi.json"
        for method in sorted(getattr(r, "methods", set()) - {"HEAD"})
    ]
    assert len(routes) >= 7, routes
    mutating = [(m, p) for m, p in routes if m != "GET"]
    assert mutating, "no mutating routes found"

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def probe() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kiln") as client:
            for method, path in routes:
                assert (await client.request(method, path)).status_code == 401, path
                bad = await client.request(method, path, headers=auth("nope"))
                assert bad.status_code == 401, path
                reader = await client.request(method, path, headers=auth("kiln_reader"), json={})
                admin = await client.request(method, path, headers=auth("kiln_admin"), json={})
                if method == "GET":
                    assert reader.status_code not in {401, 403}, path
                else:
                    assert reader.status_code == 403, path  # reading is not deploying
                assert admin.status_code not in {401, 403}, path
            assert (await client.get("/healthz")).json() == {"status": "ok"}

    asyncio.run(probe())


def test_a_second_holder_cannot_lead_the_same_environment(tmp_path: Path) -> None:
    first, second = FileLeaderLock(tmp_path), FileLeaderLock(tmp_path)
    assert first.try_acquire("prod")
    assert not second.try_acquire("prod")
    assert second.try_acquire("dev")
    first.release("prod")
    assert second.try_acquire("prod")
    assert second.held() == frozenset({"dev", "prod"})
    second.close()
    first.close()
