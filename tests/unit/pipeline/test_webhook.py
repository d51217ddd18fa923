"""The CI webhook route: a bad signature is 401 and triggers nothing; the secret file
must be 0600; a good delivery triggers exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from kiln.adapters.store.leader import FileLeaderLock
from kiln.api.app import create_app
from kiln.bootstrap.webhook import CiHook
from kiln.core.access import TokenTable
from kiln.core.pipeline.webhook import sign
from kiln.errors import Refused
from kiln.ports.clock import SystemClock
from kiln.services.controller import Controller

SECRET = b"shared-secret"


class Hook(CiHook):
    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, state_dir.parent / "kiln.yaml")
        self.triggered: list[bytes] = []

    def trigger(self, source: str, body: bytes) -> dict[str, object]:
        self.triggered.append(body)
        return {"accepted": True, "source": source}


def _post(app: object, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://kiln") as client:
            return await client.post("/webhooks/ci", content=body, headers=dict(headers))

    return asyncio.run(go())


@pytest.fixture
def hook(tmp_path: Path) -> Hook:
    keys = tmp_path / ".kiln" / "keys"
    keys.mkdir(parents=True)
    (keys / "webhook.secret").write_bytes(SECRET + b"\n")
    (keys / "webhook.secret").chmod(0o600)
    return Hook(tmp_path / ".kiln")


def _app(hook: Hook, tmp_path: Path) -> object:
    controller = Controller(
        spec=None, leader=FileLeaderLock(tmp_path), clock=SystemClock(), address="test"
    )
    return create_app(controller=controller, tokens=TokenTable([]), ci_hook=hook)


def test_bad_or_missing_signatures_are_401_and_trigger_nothing(hook: Hook, tmp_path: Path) -> None:
    app = _app(hook, tmp_path)
    body = json.dumps({"after": "a" * 40}).encode()
    for headers in (
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": sign(body, b"other-secret")},
        {"X-Gitlab-Token": "wrong"},
    ):
        response = _post(app, body, headers)
        assert response.status_code == 401, headers
        assert SECRET.decode() not in response.text
    assert hook.triggered == []


def test_a_good_signature_triggers_once(hook: Hook, tmp_path: Path) -> None:
    app = _app(hook, tmp_path)
    body = b'{"after": "abc"}'
    response = _post(app, body, {"X-Hub-Signature-256": sign(body, SECRET)})
    assert response.status_code == 202
    assert response.json() == {"accepted": True, "source": "github"}
    response = _post(app, body, {"X-Gitlab-Token": SECRET.decode()})
    assert response.status_code == 202
    assert hook.triggered == [body, body]


def test_a_secret_file_others_can_read_is_refused(hook: Hook) -> None:
    (hook.state_dir / "keys" / "webhook.secret").chmod(0o644)
    with pytest.raises(Refused, match="mode 0600"):
        hook.secret()


def test_no_secret_file_refuses_everything(tmp_path: Path) -> None:
    empty = Hook(tmp_path / ".kiln")
    body = b"{}"
    with pytest.raises(Refused, match="no shared secret"):
        empty.verify({"X-Hub-Signature-256": sign(body, b"")}, body)
