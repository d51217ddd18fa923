"""docs/spec.md shows what kiln really does."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.core.spec.loader import load_spec
from kiln.errors import SpecError
from tests.unit.spec.test_valid_specs import TEN_LINES

GUIDE = (Path(__file__).resolve().parents[3] / "docs" / "spec.md").read_text(encoding="utf-8")

WITH_TWO_MISTAKES = b"""\
service: hello
environments:
  - name: dev
    replicsa: 2
  - name: prod
    replicas: 2
    strategy:
      canary:
        steps: [{setWeight: 20}, {analysis: {duration: 30s}}, {setWeight: 100}]
promotion: [dev, prd]
"""


def test_the_guide_shows_the_ten_line_spec() -> None:
    assert TEN_LINES.decode() in GUIDE


def test_the_guide_shows_real_validate_output() -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(WITH_TWO_MISTAKES)
    shown = "\n".join(p.render() for p in caught.value.problems)
    shown += f"\nerror: {caught.value}"
    assert shown in GUIDE


def test_the_guide_shows_the_schema_modeline() -> None:
    assert "# yaml-language-server: $schema=./kiln.schema.json" in GUIDE
    assert "kiln schema > kiln.schema.json" in GUIDE
