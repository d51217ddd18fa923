"""The dashboard's browser listener on a real controller process.

The controller the CLI starts on demand listens on a 0600 unix socket only;
`kiln dashboard` asks it for its loopback listener and prints a link with the
read-only token in the fragment. Over that listener: the page needs no token and
holds no data, the data needs the token, and nothing can be changed (GET only),
even with the admin token. A controller on TCP serves the page on its own address.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest

from kiln.bootstrap.controller import free_port
from kiln.bootstrap.dashboard import login_url
from kiln.cli.main import main

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "hello"
ONE_ENV = """\
service: hello
build:
  command: ["python", "app.py"]
  port: 8000
environments:
  - name: dev
    allowUnsigned: true
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    work = tmp_path / "hello"
    shutil.copytree(EXAMPLE, work)
    (work / "kiln.yaml").write_text(ONE_ENV)
    monkeypatch.chdir(work)
    try:
        yield work
    finally:
        main(["down"])


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def test_kiln_dashboard_opens_a_read_only_loopback_listener(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = _json(capsys, "dashboard", "-o", "json")
    url, login = str(link["url"]), str(link["login"])
    assert url.startswith("http://127.0.0.1:") and url.endswith("/ui/")
    reader = login.removeprefix(url + "#token=")
    assert reader.startswith("kiln_") and "#" not in reader
    assert _json(capsys, "dashboard", "-o", "json") == link  # one listener, the same link
    assert login_url(project / ".kiln") == login  # what `make demo` prints
    admin = (project / ".kiln" / "run" / "controller.token").read_text().strip()
    base = url.removesuffix("/ui/")
    with httpx.Client(base_url=base, timeout=10) as http:
        page = http.get("/ui/")
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        shipped = (resources.files("kiln.api") / "ui" / "index.html").read_bytes()
        assert page.content == shipped  # the same file for everyone: no data without a token
        assert http.get("/v1/dashboard").status_code == 401
        data = http.get("/v1/dashboard", headers={"Authorization": f"Bearer {reader}"})
        assert data.status_code == 200
        assert [e["name"] for e in data.json()["environments"]] == ["dev"]
        assert reader not in data.text and admin not in data.text
        for path in ("/v1/environments/dev/abort", "/v1/dashboard/listener"):
            refused = http.post(path, headers={"Authorization": f"Bearer {admin}"})
            assert refused.status_code == 405, path  # even the admin token changes nothing here
    log = (project / ".kiln" / "logs" / "controller.log").read_text(errors="replace")
    assert reader not in log and admin not in log

    code = main(["dashboard"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.replace("\n", "") == login  # the human form is the link alone


def test_a_controller_on_tcp_serves_the_page_on_its_own_address(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    log = project / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "kiln", "serve", "--listen", f"127.0.0.1:{port}"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        monkeypatch.setenv("KILN_CONTROLLER", f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        link = _json(capsys, "dashboard", "-o", "json")
        assert link["url"] == f"http://127.0.0.1:{port}/ui/"
        assert str(link["login"]).startswith(f"http://127.0.0.1:{port}/ui/#token=kiln_")
        assert httpx.get(str(link["url"]), timeout=5).status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
