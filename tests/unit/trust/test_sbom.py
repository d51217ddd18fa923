"""The CycloneDX SBOM: components with purls, licenses and hashes, valid against the schema."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from kiln.core.attest.predicates import CYCLONEDX_BOM
from kiln.core.attest.sbom import (
    Dependency,
    cyclonedx_sbom,
    parse_pinned_requirements,
    sbom_statement,
)
from kiln.core.digest import hex_of
from kiln.errors import InvalidInput, SpecError
from tests.unit.trust.fakes import ARTIFACT, T0

DEPS = [
    Dependency(
        "packaging", "24.0", license="Apache-2.0 OR BSD-2-Clause", hashes=(("sha256", "a" * 64),)
    ),
    Dependency("Flask", "3.0.3", license="BSD-3-Clause", hashes=(("sha256", "b" * 64),)),
    Dependency("odd-one", "1.0", license="Some Custom License"),
    Dependency("pinned", "2.1", purl="pkg:pypi/pinned@2.1?file_name=pinned-2.1.tar.gz"),
]


def validate(doc: dict[str, object]) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    assert error is None, f"not valid CycloneDX 1.6: {error}"


def test_the_sbom_is_valid_cyclonedx_with_purls_licenses_and_hashes() -> None:
    doc = cyclonedx_sbom("hello", ARTIFACT, DEPS, timestamp=T0)
    validate(doc)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    by_name = {c["name"]: c for c in doc["components"]}
    assert by_name["Flask"]["purl"] == "pkg:pypi/flask@3.0.3"
    assert by_name["Flask"]["licenses"] == [{"license": {"id": "BSD-3-Clause"}}]
    assert by_name["Flask"]["hashes"] == [{"alg": "SHA-256", "content": "b" * 64}]
    assert by_name["packaging"]["licenses"] == [{"expression": "Apache-2.0 OR BSD-2-Clause"}]
    assert by_name["odd-one"]["licenses"] == [{"license": {"name": "Some Custom License"}}]
    assert by_name["pinned"]["purl"] == "pkg:pypi/pinned@2.1?file_name=pinned-2.1.tar.gz"
    root = doc["metadata"]["component"]
    assert root["type"] == "container"
    assert root["hashes"] == [{"alg": "SHA-256", "content": hex_of(ARTIFACT)}]


def test_the_sbom_is_deterministic_for_the_same_inputs() -> None:
    one = cyclonedx_sbom("hello", ARTIFACT, DEPS, timestamp=T0)
    two = cyclonedx_sbom("hello", ARTIFACT, list(reversed(DEPS)), timestamp=T0)
    assert one == two


def test_an_empty_dependency_set_is_still_a_valid_sbom() -> None:
    validate(cyclonedx_sbom("hello", ARTIFACT, [], timestamp=T0))


def test_the_sbom_statement_is_about_the_artifact() -> None:
    stmt = sbom_statement("hello", ARTIFACT, DEPS, timestamp=T0)
    assert stmt.predicate_type == CYCLONEDX_BOM
    assert stmt.about(ARTIFACT)


def test_an_unsupported_hash_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unsupported hash"):
        cyclonedx_sbom("x", ARTIFACT, [Dependency("a", "1", hashes=(("md4", "00"),))], timestamp=T0)


def test_pinned_requirements_parse_with_continuations_and_hashes() -> None:
    text = (
        "# generated\n"
        "--index-url https://pypi.example/simple\n"
        "packaging==24.0 \\\n"
        "    --hash=sha256:" + "A" * 64 + " \\\n"
        "    --hash=sha256:" + "c" * 64 + "\n"
        "Flask[async]==3.0.3 ; python_version >= '3.8'  # web\n"
    )
    deps = parse_pinned_requirements(text)
    assert deps == [
        Dependency("packaging", "24.0", hashes=(("sha256", "a" * 64), ("sha256", "c" * 64))),
        Dependency("Flask", "3.0.3"),
    ]


def test_unpinned_requirements_are_each_reported_with_their_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_pinned_requirements("ok==1\nloose>=2\n\nwild==1.*\n!!!\n", source="req.txt")
    assert [(p.line, p.message.split(":")[0]) for p in caught.value.problems] == [
        (2, "loose is not pinned to one version"),
        (4, "wild is not pinned to one version"),
        (5, "not a requirement"),
    ]
