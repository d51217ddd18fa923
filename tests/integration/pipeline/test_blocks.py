"""Each acceptance case blocks promotion with its reason printed and recorded.

Real builds of the example, real signatures, real tests run against the
artifact (a unit test in its files, a smoke test against a fresh instance).
No controller is needed: `--until gate` stops before any deploy, and
`kiln pipeline promote` decides one promotion.
"""

from __future__ import annotations

import shutil

import pytest

from tests.integration.pipeline.conftest import OSV, Project, git

pytestmark = pytest.mark.integration


def _gate_reasons(project: Project, gate: str) -> list[str]:
    verdicts = [e for e in project.events("gate.verdict") if e["details"]["gate"] == gate]
    assert verdicts, f"no {gate} verdict recorded"
    reasons: list[str] = verdicts[-1]["details"]["reasons"]
    assert verdicts[-1]["details"]["outcome"] != "passed"
    return reasons


def test_the_happy_path_passes_the_first_gate_without_deploying(project: Project) -> None:
    code, out, err = project.kiln("pipeline", "run", "--until", "gate")
    assert code == 0, out + err
    assert "gate dev" in out and "pipeline succeeded" in out
    promotions = project.events("promotion")
    assert promotions == []  # a passing check records nothing until the deploy admits it
    assert len(project.events("test")) == 2  # unit + smoke, each signed and recorded


def test_a_failing_test_blocks_promotion(project: Project) -> None:
    project.edit_spec(
        "tests:\n",
        'tests:\n  - name: broken\n    command: ["python", "-c", "raise SystemExit(3)"]\n',
    )
    code, out, err = project.kiln("pipeline", "run")
    assert code == 1
    assert "broken: exited 3" in out
    assert "BLOCKED" not in err
    assert "tests: broken: failed" in out or "broken" in out.split("gate dev")[1]
    reasons = _gate_reasons(project, "tests")
    assert any("broken" in r for r in reasons)
    (promotion,) = project.events("promotion")
    assert promotion["details"]["outcome"] == "blocked"


def test_an_unsigned_artifact_is_blocked(project: Project) -> None:
    digest = project.build()
    assert project.kiln("test", "--artifact", digest)[0] == 0
    code, out, _ = project.kiln("pipeline", "promote", "dev", digest)
    assert code == 1
    assert "unsigned: no https://slsa.dev/provenance/v1 attestation" in out
    assert any("unsigned" in r for r in _gate_reasons(project, "signed"))


def test_a_revoked_artifact_is_blocked(project: Project) -> None:
    code, out, err = project.kiln("pipeline", "run", "--until", "test")
    assert code == 0, out + err
    digest = project.build()
    assert project.kiln("artifacts", "revoke", digest, "--reason", "leaked key")[0] == 0
    code, out, _ = project.kiln("pipeline", "promote", "dev", digest)
    assert code == 1
    assert "revoked" in out and "leaked key" in out
    (promotion,) = project.events("promotion")
    assert any("revoked" in r for r in promotion["details"]["reasons"])


def _sign_with_sbom(project: Project, sbom: str) -> str:
    """Provenance as built, but the SBOM from a fixture: it names the dependency under test."""
    digest = project.build()
    assert project.kiln("attest", "provenance", digest)[0] == 0
    path = OSV / "sbom" / sbom
    assert (
        project.kiln("attest", "predicate", digest, "--type", "sbom", "--file", str(path))[0] == 0
    )
    assert project.kiln("test", "--artifact", digest)[0] == 0
    return digest


def test_a_known_vulnerability_is_blocked(project: Project) -> None:
    shutil.copytree(OSV / "db", project.root / "osv")
    git(project.root, "add", "-A")
    project.edit_spec(
        "environments:\n",
        "policies:\n  vulnerabilities:\n    database: osv\n    threshold: high\nenvironments:\n",
    )
    project.edit_spec(
        "  - name: dev\n", "  - name: dev\n    gates: [signed, tests, vulnerabilities]\n"
    )
    digest = _sign_with_sbom(project, "vulnerable.cdx.json")
    code, out, _ = project.kiln("pipeline", "promote", "dev", digest)
    assert code == 1
    assert "KILN-2026-0001" in out
    assert any("KILN-2026-0001" in r for r in _gate_reasons(project, "vulnerabilities"))


def test_a_denied_license_is_blocked(project: Project) -> None:
    project.edit_spec(
        "environments:\n",
        "policies:\n  licenses:\n    allow: [MIT, Apache-2.0, BSD-3-Clause]\n"
        "    deny: [GPL-3.0-only]\nenvironments:\n",
    )
    project.edit_spec("  - name: dev\n", "  - name: dev\n    gates: [signed, tests, licenses]\n")
    digest = _sign_with_sbom(project, "denied-license.cdx.json")
    code, out, _ = project.kiln("pipeline", "promote", "dev", digest)
    assert code == 1
    assert "GPL-3.0-only" in out
    assert any("GPL-3.0-only" in r for r in _gate_reasons(project, "licenses"))


def test_a_cel_rule_violated_in_prod_is_blocked(project: Project) -> None:
    project.edit_spec(
        "environments:\n",
        "policies:\n  rules:\n    - name: ha-in-prod\n      expr: env.replicas >= 3\n"
        "      message: prod needs three replicas\n      environments: [prod]\n"
        "environments:\n",
    )
    project.edit_spec("  - name: prod\n", "  - name: prod\n    gates: [signed, tests, rules]\n")
    code, out, err = project.kiln("pipeline", "run", "--until", "test")
    assert code == 0, out + err
    digest = project.build()
    code, out, _ = project.kiln("pipeline", "promote", "prod", digest)
    assert code == 1
    assert "prod needs three replicas" in out
    # and it never ran in staging, which blocks on its own
    assert "has not run healthy in staging" in out
    assert any("three replicas" in r for r in _gate_reasons(project, "rules"))
