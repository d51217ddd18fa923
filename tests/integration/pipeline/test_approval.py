"""A required manual approval pauses promotion until an approver signs one."""

from __future__ import annotations

import pytest

from tests.integration.pipeline.conftest import Project, git

pytestmark = pytest.mark.integration


def test_promotion_waits_for_a_signed_approval_then_passes(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.edit_spec("  - name: dev\n", "  - name: dev\n    approvals: {required: 1}\n")
    assert project.kiln("keys", "generate", "alice")[0] == 0
    trust = project.root / "trust.yaml"
    trust.write_text(
        trust.read_text().replace(
            "keys:\n",
            "keys:\n  - {id: alice, publicKey: .kiln/keys/alice.pub, kinds: [approver]}\n",
        )
    )
    git(project.root, "commit", "-qam", "alice approves")
    code, data, err = project.json("pipeline", "run", "--until", "gate")
    assert code == 1, err
    assert data["status"] == "awaiting-approval"
    digest = data["artifact"]
    gate = data["stages"][-1]
    assert gate["stage"] == "gate dev" and gate["outcome"] == "awaiting-approval"
    assert any("approval" in r for r in gate["reasons"])

    # The builder key is not an approver: its approval does not count.
    monkeypatch.setenv("KILN_ACTOR", "mallory")
    assert project.kiln("approve", "dev", digest)[0] == 0
    code, out, _ = project.kiln("pipeline", "promote", "dev", digest, "--dry-run")
    assert code == 1

    monkeypatch.setenv("KILN_ACTOR", "alice")
    code, out, err = project.kiln("approve", "dev", digest, "--key", "alice")
    assert code == 0, err
    assert "approved" in out and "as alice" in out
    code, out, err = project.kiln("pipeline", "promote", "dev", digest)
    assert code == 0, out + err
    assert "PROMOTABLE" in out
    (promotion,) = [p for p in project.events("promotion") if p["details"]["outcome"] == "promoted"]
    assert promotion["details"]["from"] is None
