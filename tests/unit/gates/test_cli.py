"""``kiln gate`` and ``kiln policy check``, called in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.core.spec.loader import load_spec

from .conftest import DB, SBOMS

SPEC = """\
service: hello
tests:
  - name: unit
    command: [python, -m, pytest]
policies:
  vulnerabilities:
    database: db
    threshold: high
    ignore:
      - id: CVE-2999-10002
        reason: only the redirect path is affected and we never follow redirects
        expires: "2000-01-01"
  licenses:
    allow: [Apache-2.0, BSD-2-Clause, BSD-3-Clause, MIT, MPL-2.0]
    deny: [GPL-3.0-only]
  rules:
    - name: no-debug-in-prod
      expr: "!(has(config.DEBUG) && config.DEBUG == true)"
      message: DEBUG must be off in prod
      environments: [prod]
environments:
  - name: dev
    gates: [vulnerabilities, licenses]
  - name: prod
    config: {DEBUG: true}
    gates: [vulnerabilities, licenses, rules, tests]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "kiln.yaml").write_text(SPEC)
    (tmp_path / "db").symlink_to(DB)
    return tmp_path / "kiln.yaml"


def test_the_example_spec_is_valid() -> None:
    spec = load_spec(SPEC, source="kiln.yaml")
    assert [g.value for g in spec.environment("prod").gates] == [
        "vulnerabilities",
        "licenses",
        "rules",
        "tests",
    ]


def test_a_clean_sbom_passes_dev_and_exits_0(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-f", str(project), "gate", "dev", "--sbom", str(SBOMS / "clean.cdx.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines() == [
        "gates for dev",
        "  vulnerabilities  PASSED",
        "                     - the ignore of CVE-2999-10002 matched no finding; remove it?",
        "  licenses         PASSED",
        "result: PASSED",
    ]


def test_a_vulnerable_dependency_exits_1_with_the_reason(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = project.parent / "gates.xml"
    sbom = str(SBOMS / "vulnerable.cdx.json")
    code = main(["-f", str(project), "gate", "dev", "--sbom", sbom, "--junit", str(junit)])
    out = capsys.readouterr().out
    assert code == 1
    assert b'<failure message="failed: requests@2.90.1 is affected by KILN-2026-0001' in (
        junit.read_bytes()
    )
    assert "  vulnerabilities  FAILED" in out
    assert (
        "requests@2.90.1 is affected by KILN-2026-0001 (CVE-2999-10001), severity critical" in out
    )
    assert out.rstrip().endswith("result: BLOCKED by vulnerabilities")


def test_json_output_lists_every_gate_and_reason(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = project.parent / "results.json"
    results.write_text(
        json.dumps({"results": [{"name": "unit", "passed": False, "counts": {"failed": 2}}]})
    )
    code = main(
        [
            "-f",
            str(project),
            "gate",
            "prod",
            "--sbom",
            str(SBOMS / "denied-license.cdx.json"),
            "--tests",
            str(results),
            "--artifact",
            "sha256:" + "e" * 64,
            "-o",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["passed"] is False and report["artifact"] == "sha256:" + "e" * 64
    outcomes = {g["gate"]: (g["outcome"], g["reasons"]) for g in report["gates"]}
    assert outcomes["vulnerabilities"][0] == "passed"
    assert outcomes["licenses"] == (
        "failed",
        ["copyleft-thing@1.0.0 (GPL-3.0-only): GPL-3.0-only is denied"],
    )
    assert outcomes["rules"] == ("failed", ["rule no-debug-in-prod: DEBUG must be off in prod"])
    assert outcomes["tests"] == ("failed", ["unit (unit) failed (0 passed, 2 failed, 0 errors)"])


def test_missing_evidence_is_inconclusive_and_exits_1(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-f", str(project), "gate", "dev"])
    out = capsys.readouterr().out
    assert code == 1
    assert "vulnerabilities  INCONCLUSIVE" in out and "no SBOM was provided" in out


def test_a_broken_osv_file_is_a_clear_error_naming_it(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "osv"
    broken.mkdir()
    (broken / "bad.json").write_text('{"id": "X", "affected": "oops"}')
    code = main(
        [
            "-f",
            str(project),
            "gate",
            "dev",
            "--sbom",
            str(SBOMS / "clean.cdx.json"),
            "--osv",
            str(broken),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"{broken / 'bad.json'} (X): 'affected' must be a list" in err
    assert "Traceback" not in err


def test_an_unknown_environment_is_not_found(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-f", str(project), "gate", "qa"])
    assert code == 1
    assert "no environment 'qa'" in capsys.readouterr().err


def test_policy_check_reports_rule_violations_and_expired_ignores(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-f", str(project), "policy", "check", "-o", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["problems"] == [
        {"where": "rules.no-debug-in-prod in prod", "message": "DEBUG must be off in prod"}
    ]
    assert data["warnings"] == [
        {
            "where": "vulnerabilities.ignore[0]",
            "message": "ignore of CVE-2999-10002 expired on 2000-01-01",
        }
    ]
    assert data["advisories"] == 8


def test_the_osv_database_is_read_only_where_it_is_checked(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project.parent / "db").unlink()  # the spec's database is gone ...
    text = project.read_text().replace(
        "    gates: [vulnerabilities, licenses]\n", "    gates: [licenses]\n"
    )
    project.write_text(text)
    code = main(["-f", str(project), "gate", "dev", "--sbom", str(SBOMS / "clean.cdx.json")])
    assert code == 0, capsys.readouterr()  # ... but dev does not check vulnerabilities
    code = main(["-f", str(project), "gate", "prod", "--sbom", str(SBOMS / "clean.cdx.json")])
    assert code == 1
    assert "OSV database" in capsys.readouterr().err
