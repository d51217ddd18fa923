"""examples/ci: the CI files parse and wire the pipeline, its report and its secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

CI = Path(__file__).resolve().parents[3] / "examples" / "ci"


def _load(name: str) -> Any:
    return YAML(typ="safe").load((CI / name).read_text())


def test_github_workflow_runs_checks_then_the_pipeline_and_keeps_the_report() -> None:
    flow = _load("github-actions.yml")
    assert flow["permissions"] == {"contents": "read"}
    jobs = flow["jobs"]
    assert jobs["pipeline"]["needs"] == "policies"
    checks = [s.get("run", "") for s in jobs["policies"]["steps"]]
    assert "kiln validate" in checks and "kiln policy check" in checks
    steps = jobs["pipeline"]["steps"]
    run = next(s["run"] for s in steps if "kiln pipeline run" in s.get("run", ""))
    assert "--junit kiln-junit.xml" in run and "--output json" in run
    keep = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert keep["if"] == "always()" and "kiln-junit.xml" in keep["with"]["path"]
    key_step = next(s for s in steps if s.get("name") == "Signing key")
    assert "secrets.KILN_SIGNING_KEY" in key_step["env"]["KILN_SIGNING_KEY"]
    assert "umask 077" in key_step["run"] and "echo" not in key_step["run"]


def test_gitlab_ci_runs_checks_then_the_pipeline_with_a_junit_report() -> None:
    ci = _load("gitlab-ci.yml")
    assert ci["stages"] == ["check", "pipeline"]
    assert ci["policies"]["script"] == ["kiln validate", "kiln policy check"]
    job = ci["pipeline"]
    assert any("kiln pipeline run" in line for line in job["script"])
    assert job["artifacts"]["reports"]["junit"] == "kiln-junit.xml"
    assert job["artifacts"]["when"] == "always"
