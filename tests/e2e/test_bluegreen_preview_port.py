"""Blue/green with a preview port and manual promotion, through the real controller
and each real router (embedded, HAProxy), under load on the main port.

While the preview is open, the environment's `previewPort` serves the new release
only (no header needed) and `kiln status` names its URL; the main port keeps
serving the old release. `kiln promote` moves all traffic and closes the preview
port (HAProxy, which cannot drop a port without a reload, answers 503 there); so
does `kiln abort` of a later preview. No request on the main port fails.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.adapters.store.desired import SqliteDesiredState
from kiln.bootstrap.runtime import provider
from tests.e2e.test_bluegreen_manual import instances_of, served, settles_on, wait_for
from tests.e2e.test_controller_kill9 import (
    build_version,
    cli,
    environment,
    router_port,
)
from tests.e2e.test_rollout_executor import Traffic
from tests.project import hello_spec, make_project

pytestmark = pytest.mark.e2e


def preview_spec(port: int, kind: str) -> str:
    return hello_spec(
        replicas=2,
        gates="this story is about the preview port; gates have their own tests",
        rest=f"""\
    router: {{kind: {kind}}}
    strategy:
      blueGreen: {{previewPort: {port}, autoPromotionSeconds: null}}
""",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def preview_status(port: int) -> int | None:
    """The status of one GET on the preview port; None when nothing accepts there."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status
    except ConnectionRefusedError:
        return None
    finally:
        conn.close()


def preview_becomes(port: int, wanted: int | None, what: str) -> None:
    """The route follows the persisted state (persist, then act): wait for it."""
    deadline = time.monotonic() + 10
    while preview_status(port) != wanted:
        assert time.monotonic() < deadline, f"the preview port never {what}"
        time.sleep(0.05)


def opens(port: int) -> None:
    preview_becomes(port, 200, "served")


def closes(port: int, kind: str) -> None:
    """Closed: the embedded router stops listening; HAProxy, which cannot drop a port
    without a reload, answers 503 from its empty preview backend."""
    preview_becomes(port, None if kind == "embedded" else 503, "closed")


@pytest.fixture(params=["embedded", "haproxy"])
def router_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def preview_port() -> int:
    return free_port()


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preview_port: int, router_kind: str
) -> Iterator[Path]:
    spec = preview_spec(preview_port, router_kind)
    yield from make_project(tmp_path, monkeypatch, spec)


def test_the_preview_port_serves_the_new_release_until_promotion(
    project: Path, capsys: pytest.CaptureFixture[str], preview_port: int, router_kind: str
) -> None:
    state_dir = project / ".kiln"
    v1 = build_version(project, capsys, "v1")
    assert cli(capsys, "deploy", "prod", v1, "--no-wait")[0] == 0
    desired = SqliteDesiredState(state_dir / "state.db")
    runtime = provider("process", state_dir)
    try:
        # The first release waits for `kiln promote` too; nothing is stable to keep yet.
        wait_for(desired, "the first pause", lambda s: str(s.phase) == "stepping")
        assert cli(capsys, "promote", "prod")[0] == 0
        wait_for(desired, "the first release", lambda s: str(s.phase) == "succeeded")
        closes(preview_port, router_kind)
        port = router_port(environment(capsys, "prod")["url"])
        v2 = build_version(project, capsys, "v2")
        with Traffic(port) as traffic:
            code, _, err = cli(capsys, "deploy", "prod", v2, "--no-wait")
            assert code == 0, err
            state = wait_for(desired, "the preview", lambda s: s.preview and s.weight == 0)
            new = instances_of(runtime, state.candidate)
            old = instances_of(runtime, str(state.stable))
            assert len(new) == 2 and not new & old
            # The preview port: the new release only, no header needed.
            opens(preview_port)
            settles_on(preview_port, new)
            assert served(port, 20) <= old
            url = f"http://127.0.0.1:{preview_port}"
            assert environment(capsys, "prod")["previewUrl"] == url
            code, out, _ = cli(capsys, "status", "prod")
            assert code == 0 and f"prod preview: {url} (the new release only)" in out

            assert cli(capsys, "promote", "prod")[0] == 0
            wait_for(desired, "the promotion", lambda s: str(s.phase) == "succeeded")
            settles_on(port, new)
            closes(preview_port, router_kind)
            assert environment(capsys, "prod")["previewUrl"] is None

            # An aborted preview closes the port too; the stable release never moved.
            v3 = build_version(project, capsys, "v3")
            code, _, err = cli(capsys, "deploy", "prod", v3, "--no-wait")
            assert code == 0, err
            third = wait_for(
                desired,
                "the second preview",
                lambda s: s.preview and s.candidate != state.candidate,
            )
            opens(preview_port)
            settles_on(preview_port, instances_of(runtime, third.candidate))
            assert cli(capsys, "abort", "prod")[0] == 0
            wait_for(desired, "the abort", lambda s: str(s.phase) == "rolled-back")
            closes(preview_port, router_kind)
            assert served(port, 20) <= new
        with capsys.disabled():
            print(f"\npreview port ({router_kind}): ok {traffic.ok}, failed {traffic.failures}")
        assert traffic.ok > 0
        assert traffic.failures == []
        assert traffic.server_errors == 0
    finally:
        desired.close()
