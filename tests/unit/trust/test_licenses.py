"""Licenses from installed distributions' METADATA (core metadata spec, PEP 639)."""

from __future__ import annotations

import pytest

from kiln.core.attest.licenses import parse_metadata
from kiln.core.attest.sbom import Dependency

# packaging 26.4's own METADATA header lines (the example's dependency).
PACKAGING = """\
Metadata-Version: 2.5
Name: packaging
Version: 26.4
License-Expression: Apache-2.0 OR BSD-2-Clause
License-File: LICENSE
Classifier: License :: OSI Approved :: BSD License
"""


def test_license_expression_wins() -> None:
    assert parse_metadata(PACKAGING) == Dependency(
        "packaging", "26.4", license="Apache-2.0 OR BSD-2-Clause"
    )


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("License: MIT\nClassifier: License :: OSI Approved :: Apache Software License\n", "MIT"),
        ("License: Apache 2.0\n", "Apache-2.0"),
        ("License: Some Custom Terms\n", "Some Custom Terms"),
        ("License: UNKNOWN\nClassifier: License :: OSI Approved :: MIT License\n", "MIT"),
        (
            "License: Copyright (c) someone\n        Permission is hereby granted\n"
            "Classifier: License :: OSI Approved :: ISC License (ISCL)\n",
            "ISC",
        ),
        (
            "Classifier: License :: OSI Approved :: Apache Software License\n"
            "Classifier: License :: OSI Approved :: MIT License\n",
            "Apache-2.0 OR MIT",
        ),
        ("Classifier: License :: OSI Approved :: BSD License\n", ""),
        (
            "Classifier: License :: OSI Approved :: MIT License\n"
            "Classifier: License :: OSI Approved :: BSD License\n",
            "",
        ),
        ("Classifier: Programming Language :: Python\n", ""),
        ("", ""),
    ],
)
def test_license_fallbacks(lines: str, expected: str) -> None:
    dep = parse_metadata(f"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n{lines}")
    assert dep is not None
    assert dep.license == expected


def test_metadata_without_name_or_version_is_no_dependency() -> None:
    assert parse_metadata("Metadata-Version: 2.1\nName: demo\n") is None
    assert parse_metadata("garbage") is None
