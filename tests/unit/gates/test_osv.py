"""OSV parsing and matching, following the schema's evaluation pseudocode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kiln.core.gates.osv import Affected, Undecidable, is_affected, parse_database
from kiln.errors import InvalidInput
from kiln.services.gates import load_osv

from .conftest import DB


def _affected(
    ranges: list[dict[str, Any]] | None = None, versions: list[str] | None = None
) -> Affected:
    doc = {
        "id": "T-1",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Demo_Pkg"},
                "ranges": ranges or [],
                "versions": versions or [],
            }
        ],
    }
    (advisory,) = parse_database(json.dumps(doc).encode(), "t.json")
    return advisory.affected[0]


def _eco(*events: dict[str, str], kind: str = "ECOSYSTEM") -> list[dict[str, Any]]:
    return [{"type": kind, "events": list(events)}]


RANGE_CASES = [
    # (events, version, affected)
    ([{"introduced": "0"}], "0.0.1", True),
    ([{"introduced": "0"}, {"fixed": "1.0.2"}], "1.0.1", True),
    ([{"introduced": "0"}, {"fixed": "1.0.2"}], "1.0.2", False),
    ([{"introduced": "1.0"}, {"fixed": "1.2"}], "0.9", False),
    ([{"introduced": "1.0"}, {"fixed": "1.2"}], "1.0.0", True),  # PEP 440: 1.0 == 1.0.0
    ([{"introduced": "1.0"}, {"fixed": "1.2"}], "1.2rc1", True),  # a pre-release of the fix
    ([{"introduced": "1.0"}, {"fixed": "1.2"}], "1.1.post1", True),
    ([{"introduced": "0"}, {"last_affected": "2.1.214"}], "2.1.214", True),
    ([{"introduced": "0"}, {"last_affected": "2.1.214"}], "2.1.215", False),
    # two intervals; events deliberately out of order (the schema sorts them)
    (
        [{"fixed": "3.2.5"}, {"introduced": "3.0.0"}, {"introduced": "1.0.0"}, {"fixed": "1.0.2"}],
        "2.0",
        False,
    ),
    (
        [{"fixed": "3.2.5"}, {"introduced": "3.0.0"}, {"introduced": "1.0.0"}, {"fixed": "1.0.2"}],
        "3.1",
        True,
    ),
    ([{"introduced": "0"}, {"limit": "2.0"}], "2.5", False),
    ([{"introduced": "0"}, {"limit": "2.0"}], "1.5", True),
    ([{"introduced": "0"}, {"limit": "*"}], "99", True),
]


@pytest.mark.parametrize(("events", "version", "expected"), RANGE_CASES)
def test_ecosystem_ranges_follow_the_osv_evaluation(
    events: list[dict[str, str]], version: str, expected: bool
) -> None:
    assert is_affected(_affected(_eco(*events)), version) is expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.0.0-alpha", False), ("1.0.0", True), ("1.0.1-rc.1", True), ("1.0.1", False)],
)
def test_semver_ranges_use_semver_precedence(version: str, expected: bool) -> None:
    affected = _affected(_eco({"introduced": "1.0.0"}, {"fixed": "1.0.1"}, kind="SEMVER"))
    assert is_affected(affected, version) is expected


def test_a_semver_range_falls_back_to_pep440_for_python_versions() -> None:
    affected = _affected(_eco({"introduced": "1.0.0"}, {"fixed": "1.0.1"}, kind="SEMVER"))
    assert is_affected(affected, "1.0.0.post2") is True  # not SemVer, but PEP 440 orders it


def test_listed_versions_match_exactly_or_by_pep440_equality() -> None:
    affected = _affected(versions=["2.0", "2.1.0"])
    assert is_affected(affected, "2.0.0") is True
    assert is_affected(affected, "2.1") is True
    assert is_affected(affected, "2.2") is False


def test_git_ranges_are_not_evaluated_but_the_versions_list_is() -> None:
    git = [{"type": "GIT", "repo": "https://x.invalid", "events": [{"introduced": "abc"}]}]
    affected = _affected(git, versions=["5.0"])
    assert is_affected(affected, "5.0") is True
    assert is_affected(affected, "4.0") is False


def test_an_uncomparable_version_is_undecidable_not_unaffected() -> None:
    affected = _affected(_eco({"introduced": "0"}, {"fixed": "1.0"}))
    with pytest.raises(Undecidable, match="cannot be compared"):
        is_affected(affected, "not a version!")


def test_package_names_are_pep503_normalised() -> None:
    assert _affected().name == "demo-pkg"


def test_the_fixture_database_loads_every_file_and_list() -> None:
    ids = sorted(a.id for a in load_osv(DB))
    assert ids == [f"KILN-2026-000{i}" for i in range(1, 9)]


def test_severity_comes_from_cvss_or_labels(advisories: Any) -> None:
    by_id = {a.id: a.affected[0] for a in advisories}
    assert (by_id["KILN-2026-0001"].severity, by_id["KILN-2026-0001"].severity_basis) == (
        "critical",
        "CVSS 9.8",
    )
    assert by_id["KILN-2026-0002"].severity == "medium"  # MODERATE
    assert by_id["KILN-2026-0003"].severity == "high"  # ecosystem_specific
    assert by_id["KILN-2026-0005"].severity == "unknown"
    assert by_id["KILN-2026-0006"].severity == "low"  # CVSS 1.6


def test_the_higher_of_two_severities_wins() -> None:
    doc = {
        "id": "T-2",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:L"}],
        "database_specific": {"severity": "CRITICAL"},
        "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1"]}],
    }
    (advisory,) = parse_database(json.dumps(doc).encode(), "t.json")
    assert advisory.affected[0].severity == "critical"


BAD = [
    ("{not json", "not valid JSON"),
    ('{"affected": []}', "has no 'id'"),
    ('{"id": "X", "affected": [{"package": {"name": "a"}}]}', "ecosystem"),
    (
        '{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
        ' "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "1"}]}]}]}',
        "at least one 'introduced'",
    ),
    (
        '{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
        ' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}]}]}',
        "exactly one key",
    ),
    (
        '{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
        ' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "banana!"}]}]}]}',
        "not a valid PEP 440 version",
    ),
    (
        '{"id": "X", "affected": [{"package": {"ecosystem": "PyPI", "name": "a"},'
        ' "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0"}]}]}]}',
        "not a valid SemVer version",
    ),
    ('{"id": "X", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:Q"}]}', "CVSS"),
    ("[1]", "must be a JSON object"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_osv_files_are_clear_errors_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "sub").mkdir()
    bad = tmp_path / "sub" / "broken.json"
    bad.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_osv(tmp_path)
    assert str(bad) in caught.value.message
    assert message in caught.value.message


def test_null_lists_allowed_by_the_schema_are_read_as_empty() -> None:
    doc = {
        "id": "T-3",
        "modified": "2026-01-01T00:00:00Z",
        "aliases": None,
        "severity": None,
        "affected": [{"package": {"ecosystem": "PyPI", "name": "a"}, "versions": ["1.0"]}],
        "references": None,
    }
    (advisory,) = parse_database(json.dumps(doc).encode(), "t.json")
    assert advisory.aliases == () and advisory.affected[0].severity == "unknown"
    (empty,) = parse_database(b'{"id": "T-4", "affected": null}', "t.json")
    assert empty.affected == ()


def test_a_cvss_v2_vector_gives_a_severity() -> None:
    doc = {
        "id": "T-5",
        "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "a"}, "versions": ["1.0"]}],
    }
    (advisory,) = parse_database(json.dumps(doc).encode(), "t.json")
    assert (advisory.affected[0].severity, advisory.affected[0].severity_basis) == (
        "high",
        "CVSS v2 7.5",
    )
