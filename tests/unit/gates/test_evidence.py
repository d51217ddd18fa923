"""Parsing the SBOM and kiln's evidence files: typed values or a clear error."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from kiln.core.gates.evidence import parse_perf, parse_tests, parse_trust, perf_to_dict
from kiln.core.gates.inputs import License, PerfEvidence, Side
from kiln.core.gates.sbom import parse_sbom
from kiln.errors import InvalidInput

from .conftest import SBOMS, sbom


@pytest.mark.parametrize("path", sorted(SBOMS.glob("*.json")), ids=lambda p: p.name)
def test_fixture_sboms_are_valid_cyclonedx_1_5(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the validator's own dependencies warn on import
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator

        error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(path.read_text())
    assert error is None


def test_components_are_read_with_normalised_pypi_names_and_licenses() -> None:
    components = {c.name: c for c in sbom("clean").components}
    assert sorted(components) == ["certifi", "flask", "jinja2", "packaging", "requests", "urllib3"]
    flask = components["flask"]
    assert (flask.version, flask.ecosystem, flask.licenses) == (
        "7.0.2",
        "pypi",
        (License("BSD-3-Clause"),),
    )
    assert components["packaging"].licenses == (License("Apache-2.0 OR BSD-2-Clause"),)


def test_nested_components_and_license_names_are_kept() -> None:
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": [
            {
                "name": "outer",
                "version": "1",
                "licenses": [{"license": {"name": "Custom Terms"}}],
                "components": [{"name": "inner", "version": "2", "purl": "pkg:pypi/Inner_Pkg@2"}],
            }
        ],
    }
    parsed = parse_sbom(json.dumps(doc).encode(), "x.json")
    assert [c.name for c in parsed.components] == ["outer", "inner-pkg"]
    assert parsed.components[0].licenses == (License("Custom Terms", is_spdx=False),)
    assert parsed.components[0].ecosystem is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "not valid JSON"),
        ('{"bomFormat": "SPDX"}', "not a CycloneDX JSON SBOM"),
        ('{"bomFormat": "CycloneDX", "components": {}}', "'components' must be a list"),
        ('{"bomFormat": "CycloneDX", "components": [{"version": "1"}]}', "needs a 'name'"),
        ('{"bomFormat": "CycloneDX", "components": [{"name": "a", "purl": "nope"}]}', "bad purl"),
    ],
)
def test_bad_sboms_name_the_file(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_sbom(text.encode(), "bom.json")
    assert caught.value.message.startswith("bom.json: ") and message in caught.value.message


def test_test_results_parse_and_validate() -> None:
    doc = {
        "results": [
            {
                "name": "unit",
                "kind": "unit",
                "passed": True,
                "counts": {"passed": 3},
                "matrix": {"PY": "3.11"},
            }
        ]
    }
    (record,) = parse_tests(json.dumps(doc).encode(), "t.json")
    assert (record.name, record.passed, record.counts.passed, dict(record.matrix)) == (
        "unit",
        True,
        3,
        {"PY": "3.11"},
    )
    for bad, message in [
        ({"results": [{"name": "u", "passed": "yes"}]}, "passed must be true or false"),
        ({"results": [{"name": "u", "passed": True, "kind": "smoke"}]}, "kind must be one of"),
        ({"results": [{"name": "u", "passed": True, "counts": {"failed": -1}}]}, "non-negative"),
        ({"results": [{"name": "u", "passed": True, "counts": {"flaky": 1}}]}, "unknown keys"),
        ({"results": {}}, "'results' must be a list"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            parse_tests(json.dumps(bad).encode(), "t.json")


def test_trust_checks_parse_with_revocation() -> None:
    doc = {
        "artifact": "sha256:" + "1" * 64,
        "checks": [{"kind": "k", "verified": False, "problem": "bad sig"}],
        "revocation": {"reason": "leak", "by": "bob"},
    }
    trust = parse_trust(json.dumps(doc).encode(), "trust.json")
    assert trust.checks[0].problem == "bad sig" and trust.revocation is not None
    assert trust.revocation.by == "bob"
    with pytest.raises(InvalidInput, match=r"trust.json: checks\[0\]\.verified"):
        parse_trust(b'{"artifact": "a", "checks": [{"kind": "k"}]}', "trust.json")


def test_perf_round_trips_and_refuses_non_numbers() -> None:
    perf = PerfEvidence(Side((1.0, 2.0), (3.0, 4.0)), None, first_release=True)
    assert parse_perf(json.dumps(perf_to_dict(perf)).encode(), "p.json") == perf
    with pytest.raises(InvalidInput, match="p95_ms must be a list of numbers"):
        parse_perf(b'{"candidate": {"p95_ms": [true], "throughput_rps": [1]}}', "p.json")


def test_an_sbom_written_by_cyclonedx_python_lib_reads_back() -> None:
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component as CdxComponent
    from cyclonedx.model.component import ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    factory = LicenseFactory()
    bom = Bom(
        components=[
            CdxComponent(
                name=name,
                version=version,
                type=ComponentType.LIBRARY,
                purl=PackageURL(type="pypi", name=name, version=version),
                bom_ref=f"{name}@{version}",
                licenses=[factory.make_from_string(lic)] if lic else None,
            )
            for name, version, lic in [
                ("packaging", "26.4", "Apache-2.0 OR BSD-2-Clause"),
                ("requests", "2.90.1", "Apache-2.0"),
                ("odd", "1.0", "My Own Terms"),
                ("bare", "2.0", ""),
            ]
        ]
    )
    parsed = parse_sbom(JsonV1Dot6(bom).output_as_string().encode(), "lib.json")
    got = {c.name: (c.version, c.licenses) for c in parsed.components}
    assert got == {
        "packaging": ("26.4", (License("Apache-2.0 OR BSD-2-Clause"),)),
        "requests": ("2.90.1", (License("Apache-2.0"),)),
        "odd": ("1.0", (License("My Own Terms", is_spdx=False),)),
        "bare": ("2.0", ()),
    }
