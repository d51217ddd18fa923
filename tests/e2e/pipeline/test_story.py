"""`kiln pipeline run` on the example: build → attest → test → gates → deploy, up to prod,
through the real controller, routers and instances; then the CI webhook.
`kiln down` in teardown."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kiln.cli.main import main
from kiln.core.pipeline.webhook import sign
from tests.integration.pipeline.conftest import Project, git

pytestmark = pytest.mark.e2e


@pytest.fixture
def live(project: Project) -> Iterator[Project]:
    try:
        yield project
    finally:
        main(["down"])


def test_the_happy_path_reaches_prod_and_the_webhook_checks_signatures(
    live: Project, tmp_path: Path
) -> None:
    # prod's first release: one replica is plenty here and keeps the test short.
    junit = tmp_path / "junit.xml"
    code, out, err = live.kiln("pipeline", "run", "--junit", str(junit), "-o", "json")
    assert code == 0, out + err
    record = json.loads(out)
    assert record["status"] == "succeeded"
    assert record["reached"] == ["dev", "staging", "prod"]
    stages = [s["stage"] for s in record["stages"]]
    assert stages == [
        "build", "attest", "test",
        "gate dev", "deploy dev", "gate staging", "deploy staging", "gate prod", "deploy prod",
    ]  # fmt: skip
    assert b'failures="0"' in junit.read_bytes()
    promotions = live.events("promotion")
    assert [(p["details"]["outcome"], p["details"]["from"]) for p in promotions] == [
        ("promoted", None), ("promoted", "dev"), ("promoted", "staging"),
    ]  # fmt: skip
    assert len(live.events("deploy.complete")) == 3

    # The webhook: a bad signature is refused and runs nothing; a good one starts a run.
    secret = live.root / ".kiln" / "keys" / "webhook.secret"
    secret.write_bytes(b"s3cret-for-tests")
    secret.chmod(0o600)
    sock = live.root / ".kiln" / "run" / "controller.sock"
    head = _head(live.root)
    body = json.dumps({"ref": "refs/heads/main", "after": head}).encode()
    logs = live.root / ".kiln" / "logs"
    before = set(logs.glob("pipeline-*.json"))
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://kiln") as c:
        bad = c.post("/webhooks/ci", content=body, headers={"X-Hub-Signature-256": "sha256=00"})
        assert bad.status_code == 401
        assert set(logs.glob("pipeline-*.json")) == before
        other = json.dumps({"after": "0" * 40}).encode()
        stale = c.post(
            "/webhooks/ci",
            content=other,
            headers={"X-Hub-Signature-256": sign(other, b"s3cret-for-tests")},
        )
        assert stale.status_code == 409
        good = c.post(
            "/webhooks/ci",
            content=body,
            headers={"X-Hub-Signature-256": sign(body, b"s3cret-for-tests")},
        )
        assert good.status_code == 202, good.text
        assert good.json()["revision"] == head
        assert Path(good.json()["record"]).parent == logs
    assert b"s3cret" not in good.content
    # The triggered run is detached: let it finish before teardown, or it would start
    # the controller again after `kiln down` and outlive the test.
    record = Path(good.json()["record"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if "status" in json.loads(record.read_text()):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    else:
        raise AssertionError(f"the triggered pipeline run did not finish: {record}")


def _head(root: Path) -> str:
    import subprocess

    git(root, "status")
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
