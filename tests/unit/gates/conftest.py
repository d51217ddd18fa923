"""Shared fixtures for the gate tests: fixture paths and spec builders."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from kiln.core.gates.inputs import Sbom
from kiln.core.gates.osv import Advisory
from kiln.core.spec.models import ServiceSpec
from kiln.services.gates import load_osv, load_sbom

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "osv"
DB = FIXTURES / "db"
SBOMS = FIXTURES / "sbom"
TODAY = date(2026, 11, 27)


def spec_of(data: dict[str, Any]) -> ServiceSpec:
    """A spec from plain data, validated as the YAML loader does."""
    return ServiceSpec.model_validate(data)


@pytest.fixture(scope="session")
def advisories() -> tuple[Advisory, ...]:
    return tuple(load_osv(DB))


def sbom(name: str) -> Sbom:
    return load_sbom(SBOMS / f"{name}.cdx.json")
