"""CI's path in-process: `kiln build --sign`, verify, push with referrers, pull elsewhere, verify.

Real pip (the example's lock), real git, the real Debian ``docker-registry``.
"""

from __future__ import annotations

import json
import shutil
from hashlib import sha256
from pathlib import Path

import pytest

from kiln.cli.main import main
from tests.integration.artifacts.conftest import git
from tests.integration.artifacts.registry_fixture import registry_url

__all__ = ["registry_url"]

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "hello"
TRUST = """\
keys:
  - id: ci
    publicKey: ci.pub
    kinds: [builder]
require:
  - {predicate: provenance, signedBy: builder}
  - {predicate: sbom, signedBy: builder}
"""


def run(capsys: pytest.CaptureFixture[str], repo: Path, state: Path, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["-f", str(repo / "kiln.yaml"), "--state-dir", str(state), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out


def test_signed_build_travels_through_a_registry_and_verifies_on_the_other_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], registry_url: str
) -> None:
    repo = tmp_path / "hello"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".kiln", "__pycache__"))
    (repo / ".gitignore").write_text(".kiln/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example")
    revision = git(repo, "rev-parse", "HEAD")
    built_state, pulled_state = tmp_path / "ci", tmp_path / "prod"

    code, out = run(capsys, repo, built_state, "build", "--sign")
    assert code == 1 and out == ""  # no key yet: refused before building
    assert run(capsys, repo, built_state, "artifacts", "list", "-o", "json")[1].strip() == "[]"
    assert run(capsys, repo, built_state, "keys", "generate", "ci")[0] == 0
    code, out = run(capsys, repo, built_state, "build", "--sign", "--key", "ci", "-o", "json")
    assert code == 0, out
    built = json.loads(out)
    digest = built["digest"]
    assert [a["predicateType"] for a in built["attestations"]] == [
        "https://slsa.dev/provenance/v1",
        "https://cyclonedx.org/bom",
    ]

    code, out = run(capsys, repo, built_state, "attest", "show", digest, "-o", "json")
    shown = {a["kind"]: a["statement"]["predicate"] for a in json.loads(out)["attestations"]}
    definition = shown["provenance"]["buildDefinition"]
    deps = definition["resolvedDependencies"]
    assert deps[0]["digest"] == {"gitCommit": revision}
    lock = (repo / "requirements.txt").read_bytes()
    assert deps[1] == {"name": "requirements.txt", "digest": {"sha256": sha256(lock).hexdigest()}}
    assert "dirty" not in definition["externalParameters"]["source"]
    details = shown["provenance"]["runDetails"]["metadata"]
    assert details["startedOn"] <= details["finishedOn"]
    (component,) = shown["sbom"]["components"]
    assert component["name"] == "packaging"
    assert component["licenses"] == [{"expression": "Apache-2.0 OR BSD-2-Clause"}]
    assert len(component["hashes"]) == 2  # the lock's hashes came along

    shutil.copy(built_state / "keys" / "ci.pub", tmp_path / "ci.pub")
    (tmp_path / "trust.yaml").write_text(TRUST)
    policy = str(tmp_path / "trust.yaml")
    assert run(capsys, repo, built_state, "verify", digest, "--policy", policy)[0] == 0

    code, out = run(capsys, repo, built_state, "push", digest, "--registry", registry_url)
    assert code == 0, out
    assert "attestations: 2 transferred, 0 already there (via tag-schema)" in out

    assert run(capsys, repo, pulled_state, "verify", digest, "--policy", policy)[0] == 1
    reference = f"hello@{digest}"
    code, out = run(capsys, repo, pulled_state, "pull", reference, "--registry", registry_url)
    assert code == 0, out
    assert "attestations: 2 transferred, 0 already there (via tag-schema)" in out
    code, out = run(capsys, repo, pulled_state, "verify", digest, "--policy", policy)
    assert code == 0, out

    (repo / "app.py").write_text((repo / "app.py").read_text() + "# local change\n")
    code, out = run(
        capsys, repo, built_state, "build", "--allow-dirty", "--sign", "--key", "ci", "-o", "json"
    )
    assert code == 0, out
    dirty = json.loads(out)["digest"]
    code, out = run(capsys, repo, built_state, "attest", "show", dirty, "-o", "json")
    shown = {a["kind"]: a["statement"]["predicate"] for a in json.loads(out)["attestations"]}
    assert shown["provenance"]["buildDefinition"]["externalParameters"]["source"]["dirty"] is True
