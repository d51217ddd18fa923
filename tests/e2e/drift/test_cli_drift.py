"""`kiln drift` / `kiln reconcile` on the real CLI path: the on-demand controller, a
real unpacked artifact, its healing loop. A file edited in the unpacked tree is
found by re-verification and healed by a fresh unpack and new instances."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kiln.core.digest import Digest, hex_of
from kiln.services.unpack import verify_unpacked
from tests.e2e.test_cli_story import build, project, run

pytestmark = pytest.mark.e2e

__all__ = ["project"]  # the fixture, re-used from the CLI story


def test_drift_is_clean_after_deploy_and_a_tampered_tree_is_healed(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = build(capsys)
    assert run(capsys, "keys", "generate")[0] == 0
    assert run(capsys, "attest", "provenance", v1)[0] == 0
    assert run(capsys, "attest", "sbom", v1)[0] == 0
    # dev's gates are [signed, tests]: signed test results of this artifact are needed.
    assert run(capsys, "test", "--artifact", v1)[0] == 0
    code, _, err = run(capsys, "deploy", "dev", v1)
    assert code == 0, err

    code, out, err = run(capsys, "drift", "dev")
    assert (code, out) == (0, "dev: clean\n"), err
    code, out, _ = run(capsys, "reconcile", "dev", "--dry-run")
    assert (code, out) == (0, "dev: clean\n")

    instances = project / ".kiln" / "instances"
    app = instances / hex_of(Digest(v1)) / "rootfs" / "app" / "app.py"
    before = app.read_text()
    app.chmod(0o644)
    app.write_text(before + "\n# tampered\n")
    assert verify_unpacked(instances, Digest(v1)).changed == ("app/app.py",)

    deadline = time.monotonic() + 60
    while True:
        code, out, _ = run(capsys, "audit", "log", "-o", "json")
        kinds = [
            (e["kind"], (e.get("details") or {}).get("kind")) for e in json.loads(out)["events"]
        ]
        if ("heal", "replace") in kinds:
            break
        assert time.monotonic() < deadline, kinds
        time.sleep(0.5)
    assert ("drift.found", "tampered-tree") in kinds and ("heal", "reunpack") in kinds
    assert verify_unpacked(instances, Digest(v1)).empty
    assert app.read_text() == before
    deadline = time.monotonic() + 30
    while run(capsys, "drift", "dev")[0] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.5)
