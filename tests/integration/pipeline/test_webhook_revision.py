"""The CI webhook builds the revision it was told about, in a fresh worktree.

A real git repository with two commits and uncommitted changes in its checkout;
the real webhook route (HMAC checked) starts the real detached `kiln pipeline
run --revision` (stopped after the build). The artifact is the older commit's,
with its revision annotation, the same digest a build of that commit in place
gives; the checkout's dirty tree is never built; the worktree is gone after.
A revision the repository does not hold is refused before anything runs.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiln.adapters.store.leader import FileLeaderLock
from kiln.api.app import create_app
from kiln.bootstrap.webhook import CiHook
from kiln.core.access import TokenTable
from kiln.core.pipeline.webhook import sign
from kiln.ports.clock import SystemClock
from kiln.services.controller import Controller
from tests.integration.pipeline.conftest import Project, git

pytestmark = pytest.mark.integration

SECRET = b"webhook-secret-for-tests"


def _rev(root: Path, name: str) -> str:
    done = subprocess.run(
        ["git", "rev-parse", name], cwd=root, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _post(app: object, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://kiln") as client:
            return await client.post(
                "/webhooks/ci", content=body, headers={"X-Hub-Signature-256": sign(body, SECRET)}
            )

    return asyncio.run(go())


def _wait_for_record(path: Path, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            record: dict[str, Any] = json.loads(path.read_text())
            if "status" in record:
                return record
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"the triggered run did not finish: {path}")


def test_a_push_of_an_older_commit_builds_that_commit(project: Project, tmp_path: Path) -> None:
    root = project.root
    state = root / ".kiln"
    old = _rev(root, "HEAD")
    (root / "CHANGELOG.md").write_text("v2\n")
    git(root, "add", "CHANGELOG.md")
    git(root, "commit", "-qm", "v2")
    new = _rev(root, "HEAD")
    (root / "app.py").write_text((root / "app.py").read_text() + "\n# not committed\n")
    secret = state / "keys" / "webhook.secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    controller = Controller(
        spec=None, leader=FileLeaderLock(tmp_path), clock=SystemClock(), address="test"
    )
    hook = CiHook(state, root / "kiln.yaml", until="build")
    app = create_app(controller=controller, tokens=TokenTable([]), ci_hook=hook)

    missing = _post(app, {"after": "f" * 40})
    assert missing.status_code == 409
    assert f"revision {'f' * 40} does not exist in the repository" in missing.json()["detail"]
    malformed = _post(app, {"after": "--upload-pack=evil"})
    assert malformed.status_code == 400 and "is not a commit id" in malformed.json()["detail"]
    assert list(state.glob("logs/pipeline-*.json")) == []  # nothing ran

    accepted = _post(app, {"ref": "refs/heads/main", "after": old})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["revision"] == old != new
    record = _wait_for_record(Path(accepted.json()["record"]))
    assert record["status"] == "succeeded", record
    assert record["revision"] == old
    code, shown, err = project.json("artifacts", "show", record["artifact"])
    assert code == 0, err
    assert shown["annotations"]["org.opencontainers.image.revision"] == old
    assert shown["labels"]["dev.kiln.dirty"] == "false"

    # the same digest as building that commit in place (the `.git` file of a worktree
    # is not content); and the checkout was never touched
    assert _rev(root, "HEAD") == new
    assert "# not committed" in (root / "app.py").read_text()
    assert list((state / "checkouts").iterdir()) == []
    listed = subprocess.run(
        ["git", "worktree", "list"], cwd=root, capture_output=True, text=True, check=True
    )
    assert len(listed.stdout.strip().splitlines()) == 1, listed.stdout
    git(root, "stash", "-q")
    git(root, "checkout", "-q", old)
    assert project.build() == record["artifact"]
