"""The user's path through the CLI, on the real example: build, sign, verify, deploy,
and the refusals (an unsigned artifact, a revoked one). The controller, the routers
and the instances are real processes started on demand; `kiln down` stops them."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.cli.main import main
from tests.project import TRUST, git, make_project

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from make_project(tmp_path, monkeypatch, TRUST, name="trust.yaml")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def build(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(capsys, "build", "-o", "json")
    assert code == 0, err
    digest: str = json.loads(out)["digest"]
    return digest


def test_build_sign_deploy_and_the_refusals(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = build(capsys)
    assert run(capsys, "keys", "generate")[0] == 0
    assert run(capsys, "attest", "provenance", v1)[0] == 0
    assert run(capsys, "attest", "sbom", v1)[0] == 0
    assert run(capsys, "verify", v1)[0] == 0
    # dev's gates are [signed, tests]: signed test results of this artifact are needed.
    assert run(capsys, "test", "--artifact", v1)[0] == 0

    code, _, err = run(capsys, "deploy", "dev", v1)
    assert code == 0, err
    code, out, _ = run(capsys, "status", "dev", "-o", "json")
    (dev,) = json.loads(out)["environments"]
    assert dev["rollout"]["phase"] == "succeeded"
    with urllib.request.urlopen(dev["url"] + "/", timeout=5) as response:  # noqa: S310
        assert json.loads(response.read())["instance"].startswith("hello-dev-")

    # An artifact nobody signed is not admitted, and nothing is provisioned for it.
    (project / "app.py").write_text((project / "app.py").read_text() + "\n# v2\n")
    git(project, "commit", "-qam", "v2")
    v2 = build(capsys)
    code, _, err = run(capsys, "deploy", "staging", v2)
    assert code == 1
    assert "not admitted" in err and "provenance" in err

    # A revoked artifact is refused everywhere, signed or not.
    assert run(capsys, "artifacts", "revoke", v1, "--reason", "CVE in a dependency")[0] == 0
    code, _, err = run(capsys, "deploy", "staging", v1)
    assert code == 1 and "revoked" in err

    code, out, _ = run(capsys, "audit", "verify")
    assert code == 0
    code, out, _ = run(capsys, "audit", "log", "-o", "json")
    kinds = [e["kind"] for e in json.loads(out)["events"]]
    for kind in (
        "build",
        "attest",
        "deploy.start",
        "traffic.change",
        "deploy.complete",
        "revocation",
    ):
        assert kind in kinds, kind
