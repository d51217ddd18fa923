"""Version orderings: SemVer 2.0.0 precedence and PEP 440 ranges (property-based)."""

from __future__ import annotations

import json

from hypothesis import assume, given
from hypothesis import strategies as st
from packaging.version import Version

from kiln.core.gates.osv import is_affected, parse_database
from kiln.core.gates.versions import SemVer, normalize_name, parse_semver


def test_semver_precedence_example_of_section_11() -> None:
    # semver.org 2.0.0, item 11.4: the spec's own example, in increasing precedence.
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    parsed = [parse_semver(v) for v in ordered]
    assert all(isinstance(p, SemVer) for p in parsed)
    assert sorted(parsed, key=lambda p: p) == parsed  # type: ignore[arg-type,return-value]


def test_build_metadata_is_ignored_and_junk_refused() -> None:
    assert parse_semver("1.2.3+build.7") == parse_semver("1.2.3")
    for junk in ("1.2", "01.2.3", "1.2.3-", "v1.2.3", "1.2.3.4"):
        assert parse_semver(junk) is None


def test_pep503_normalisation() -> None:
    assert normalize_name("Zope.Interface") == "zope-interface"
    assert normalize_name("my__odd-._name") == "my-odd-name"


_release = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)).map(
    lambda t: ".".join(map(str, t))
)


@given(low=_release, high=_release, probe=_release)
def test_an_introduced_fixed_range_is_the_half_open_interval(
    low: str, high: str, probe: str
) -> None:
    assume(Version(low) < Version(high))  # a fix before its introduction is another shape
    doc = {
        "id": "P",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "p"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": low}, {"fixed": high}]}],
            }
        ],
    }
    (advisory,) = parse_database(json.dumps(doc).encode(), "p.json")
    expected = Version(low) <= Version(probe) < Version(high)
    assert is_affected(advisory.affected[0], probe) is expected
