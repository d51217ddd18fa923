"""Shared test setup: keep every test away from the user's real state and colour."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in (
        "KILN_STATE_DIR",
        "KILN_OUTPUT",
        "KILN_SPEC",
        "KILN_CONTROLLER",
        "KILN_TRUST_POLICY",
        "KILN_DATABASE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    yield
