"""CVSS v3.1 base scores: vectors with published scores (FIRST's v3.1 examples
document and NVD's calculator) and the rating boundaries of section 5."""

from __future__ import annotations

import pytest

from kiln.core.gates.cvss import base_score, base_score_v2, rating, rating_v2, roundup
from kiln.core.spec.models import Severity
from kiln.errors import InvalidInput


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),  # CVE-2014-0160 in FIRST's examples
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),  # CVE-2013-1937 in FIRST's examples
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:L", 1.6),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ],
)
def test_base_scores_match_published_values(vector: str, score: float) -> None:
    assert base_score(vector) == score


def test_roundup_avoids_floating_point_surprises() -> None:
    assert roundup(4.000000001) == 4.0
    assert roundup(4.02) == 4.1
    assert roundup(4.0) == 4.0


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0.0, None),
        (0.1, Severity.LOW),
        (3.9, Severity.LOW),
        (4.0, Severity.MEDIUM),
        (6.9, Severity.MEDIUM),
        (7.0, Severity.HIGH),
        (8.9, Severity.HIGH),
        (9.0, Severity.CRITICAL),
        (10.0, Severity.CRITICAL),
    ],
)
def test_rating_scale_of_section_5(score: float, level: Severity | None) -> None:
    assert rating(score) is level


@pytest.mark.parametrize(
    "vector",
    [
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:2.0/AV:N",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AVN/AC:L",
    ],
)
def test_malformed_vectors_are_refused(vector: str) -> None:
    with pytest.raises(InvalidInput):
        base_score(vector)


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("AV:N/AC:L/Au:N/C:N/I:N/A:C", 7.8),  # CVE-2002-0392, the v2 guide's worked example
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
        ("AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0),
        ("AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3),
        ("(AV:N/AC:L/Au:S/C:P/I:N/A:N)", 4.0),
        ("AV:N/AC:L/Au:N/C:N/I:N/A:N", 0.0),
    ],
)
def test_cvss_v2_base_scores(vector: str, score: float) -> None:
    assert base_score_v2(vector) == score


def test_cvss_v2_rating_has_no_critical_and_bad_vectors_are_refused() -> None:
    assert rating_v2(10.0) is Severity.HIGH
    assert rating_v2(4.0) is Severity.MEDIUM
    assert rating_v2(0.0) is None
    for bad in ("AV:N/AC:L", "AV:Q/AC:L/Au:N/C:N/I:N/A:C", "AV:N/AV:N/AC:L/Au:N/C:N/I:N/A:C"):
        with pytest.raises(InvalidInput):
            base_score_v2(bad)
