"""The dashboard in a real headless Chromium, against the real controller.

A git copy of examples/hello with a canary that pauses at 50% until promoted.
v1 is released, v2 is deployed and waits at the pause; `kiln dashboard` gives
the login link (read-only token in the URL fragment). The page must show the
environment, the stable version, the step list with the pause marked current and
the 50/50 weights, then follow `kiln promote` live (no reload) to 100% and
"succeeded". A wrong token shows the refused state. The token never appears in
any URL the page requested, in the address bar afterwards, or in the
controller's log; every page response carries the CSP.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.core.rollout.planner import RolloutState
from tests.e2e.test_bluegreen_manual import wait_for
from tests.e2e.test_controller_kill9 import build_version, cli
from tests.project import hello_spec, make_project

pytestmark = pytest.mark.e2e

sync_api = pytest.importorskip("playwright.sync_api")

CANARY = hello_spec(
    replicas=1,
    gates="this story is about the dashboard; the gates have their own tests",
    rest="""\
    strategy:
      canary:
        steps:
          - setWeight: 50
          - pause: {}
          - setWeight: 100
""",
)

TIMEOUT_MS = 20_000


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from make_project(tmp_path, monkeypatch, CANARY)


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:  # .ci/run installs it; only a bare machine lacks it
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def paused(state: RolloutState) -> bool:
    return str(state.phase) == "stepping" and state.step == 1


def test_the_dashboard_follows_a_canary_live_and_keeps_its_token_secret(
    project: Path, capsys: pytest.CaptureFixture[str], browser: Any
) -> None:
    state_dir = project / ".kiln"
    v1 = build_version(project, capsys, "v1")
    assert cli(capsys, "deploy", "prod", v1, "--no-wait")[0] == 0
    desired = SqliteDesiredState(state_dir / "state.db")
    try:
        # A first release has no stable one to shift from; if it pauses, let it through.
        first = wait_for(desired, "v1", lambda s: paused(s) or str(s.phase) == "succeeded")
        if paused(first):
            assert cli(capsys, "promote", "prod")[0] == 0
        wait_for(desired, "v1 released", lambda s: str(s.phase) == "succeeded")
        v2 = build_version(project, capsys, "v2")
        assert cli(capsys, "deploy", "prod", v2, "--no-wait")[0] == 0
        wait_for(desired, "v2 at the pause", paused)

        code, out, err = cli(capsys, "dashboard", "-o", "json")
        assert code == 0, err
        link = json.loads(out)
        assert link["identity"] == "local-dashboard"
        assert link["login"].startswith(link["url"] + "#token=kiln_")
        token = link["login"].split("#token=", 1)[1]

        context = browser.new_context()
        page = context.new_page()
        requested: list[str] = []
        headers: dict[str, dict[str, str]] = {}
        page.on("request", lambda request: requested.append(request.url))
        page.on("response", lambda response: headers.update({response.url: response.headers}))
        response = page.goto(link["login"])
        assert response is not None and response.status == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"

        expect = sync_api.expect
        env = page.locator('section.env[data-env="prod"]')
        expect(env).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        assert "#" not in page.url, "the token must leave the address bar"
        v1_short, v2_short = v1.split(":")[1][:12], v2.split(":")[1][:12]
        expect(env.locator(".stable .digest")).to_have_text(f"sha256:{v1_short}")
        expect(env.locator(".stable .version")).to_have_text(re.compile(r"^\d+\.\d+"))
        expect(env.locator(".candidate")).to_contain_text(v2_short)
        steps = env.locator("ol.steps li")
        expect(steps).to_have_count(3)
        expect(steps.nth(0)).to_have_attribute("data-state", "done")
        expect(steps.nth(1)).to_have_attribute("data-state", "current")
        expect(steps.nth(1)).to_have_attribute("aria-current", "step")
        expect(steps.nth(2)).to_have_attribute("data-state", "pending")
        expect(env.locator(".weights .pct")).to_have_text(["50%", "50%"])
        expect(env.locator(".weights .who")).to_contain_text(["stable", "candidate"])
        expect(env.locator("[data-instance]")).to_have_count(2)
        expect(env.locator(".health-serving")).to_have_count(2)
        expect(page.locator("#ledger-state")).to_have_attribute("data-verified", "true")
        expect(page.locator("#events tr").first).to_be_visible()

        # Live: promote from the CLI; the same page (no reload) follows it to the end.
        page.evaluate("window.__sameDocument = true")
        assert cli(capsys, "promote", "prod")[0] == 0
        promoted = time.monotonic()
        expect(env.locator(".phase")).to_have_text("succeeded", timeout=TIMEOUT_MS)
        shown = time.monotonic() - promoted
        succeeded = wait_for(desired, "v2 released", lambda s: str(s.phase) == "succeeded")
        with capsys.disabled():
            print(f"\npromote -> the page shows succeeded: {shown:.2f} s")
        # The stable section may render a poll after the phase: wait for it, do not read once.
        expect(env.locator(".stable dd.mono").last).to_have_text(succeeded.candidate)
        expect(env.locator("ol.steps li[data-state=done]")).to_have_count(3)
        expect(env.locator(".stable .digest")).to_have_text(f"sha256:{v2_short}")
        expect(env.locator(".weights .pct")).to_have_text(["100%"], timeout=TIMEOUT_MS)
        assert page.evaluate("window.__sameDocument") is True
        expect(page.locator("#events")).to_contain_text("deploy.complete")

        # A wrong token: the page says so and shows no data.
        wrong = context.new_page()
        wrong.on("request", lambda request: requested.append(request.url))
        wrong.goto(link["url"] + "#token=kiln_not-a-real-token")
        expect(wrong.locator("#connection")).to_have_attribute("data-state", "refused")
        expect(wrong.locator("#problem-title")).to_contain_text("401")
        expect(wrong.locator("section.env")).to_have_count(0)

        # No token: the page explains how to log in.
        bare = context.new_page()
        bare.goto(link["url"])
        expect(bare.locator("#connection")).to_have_attribute("data-state", "no-token")

        # The controller goes away: the first page says so and keeps its last figures.
        assert cli(capsys, "controller", "stop")[0] == 0
        expect(page.locator("#connection")).to_have_attribute("data-state", "down")
        expect(page.locator("#connection")).to_contain_text("disconnected")
        expect(env.locator(".phase")).to_have_text("succeeded")
        context.close()
    finally:
        desired.close()

    assert requested, "the page made no requests"
    assert all(token not in url for url in requested), requested
    assert all("not-a-real-token" not in url for url in requested), requested
    api = [url for url in requested if "/v1/" in url]
    assert api and all(url.endswith("/v1/dashboard") for url in api), api
    for url, got in headers.items():
        assert "default-src 'self'" in got.get("content-security-policy", ""), url
    logs = state_dir / "logs"
    for log in logs.glob("*.log"):
        assert token not in log.read_text(errors="replace"), log
