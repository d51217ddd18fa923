"""The SBOM of the real example: components and licenses from its dependency layer."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from kiln.adapters.artifacts.pip import PipInstaller
from kiln.core.attest.sbom import Dependency
from kiln.core.gates.inputs import GateInputs
from kiln.core.gates.licenses import LicensesGate
from kiln.core.gates.sbom import parse_sbom
from kiln.core.gates.verdict import Failed, Passed
from kiln.core.spec.models import LicensePolicy
from kiln.services.attest import artifact_sbom, layer_dependencies
from kiln.services.build import run_build
from kiln.services.spec import read_spec
from tests.integration.artifacts.conftest import BuilderFactory, git, make_builder

__all__ = ["make_builder"]

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "hello"
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def test_the_example_sbom_carries_packaging_license_and_passes_the_gate(
    tmp_path: Path, make_builder: BuilderFactory
) -> None:
    repo = tmp_path / "hello"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".kiln", "__pycache__"))
    (repo / ".gitignore").write_text(".kiln/\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example")
    builder = make_builder(tmp_path / "state", installer=PipInstaller())
    result = run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    store = builder.store

    deps = layer_dependencies(store, result.digest)
    assert [(d.name, d.version, d.license) for d in deps] == [
        ("packaging", "26.4", "Apache-2.0 OR BSD-2-Clause")
    ]
    lock = (repo / "requirements.txt").read_text()
    stmt = artifact_sbom(
        "hello",
        result.digest,
        artifacts=store,
        requirements=(lock, "requirements.txt"),
        timestamp=WHEN,
    )
    bom = stmt.predicate
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    (component,) = bom["components"]
    assert component["licenses"] == [{"expression": "Apache-2.0 OR BSD-2-Clause"}]
    assert len(component["hashes"]) == 2  # the lock's two wheel hashes

    sbom = parse_sbom(json.dumps(bom).encode(), "sbom")
    allowed = LicensesGate(LicensePolicy(allow=["Apache-2.0", "BSD-2-Clause"]))
    assert isinstance(allowed.evaluate(GateInputs(sbom=sbom)), Passed)
    only_mit = LicensesGate(LicensePolicy(allow=["MIT"]))
    assert isinstance(only_mit.evaluate(GateInputs(sbom=sbom)), Failed)


def test_an_unknown_license_is_listed_without_one(
    tmp_path: Path, make_builder: BuilderFactory
) -> None:
    from tests.integration.artifacts.conftest import make_repo

    repo = make_repo(tmp_path / "repo")
    builder = make_builder(tmp_path / "state")  # FakeInstaller: METADATA without a license
    result = run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    assert layer_dependencies(builder.store, result.digest) == [Dependency("fakepkg", "1.0")]
    stmt = artifact_sbom(
        "hello", result.digest, artifacts=builder.store, requirements=None, timestamp=WHEN
    )
    sbom = parse_sbom(json.dumps(stmt.predicate).encode(), "sbom")
    verdict = LicensesGate(LicensePolicy(allow=["MIT"])).evaluate(GateInputs(sbom=sbom))
    assert isinstance(verdict, Failed)
    assert "fakepkg@1.0 declares no license" in str(verdict)
