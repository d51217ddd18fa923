"""The artifact benchmarks still run (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks import bench_build, bench_store


def test_the_build_benchmark_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert bench_build.main(["--quick", "--files", "200", "--mb", "2"]) == 0
    payload = json.loads((tmp_path / ".bench" / "build.json").read_text())
    assert [row["case"].strip() for row in payload["rows"]][:3] == [
        "tar --sort=name | sha256sum",
        "same, | tee file + sync",
        "kiln build (cold store)",
    ]
    assert payload["meta"]["files"] == 200
    assert set(payload["meta"]["targets"]) == {"build_vs_baseline", "rebuild_vs_build"}


def test_the_store_benchmark_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert bench_store.main(["--quick"]) == 0
    payload = json.loads((tmp_path / ".bench" / "store.json").read_text())
    assert {row["case"] for row in payload["rows"]} == {
        "hashlib.sha256 (floor)",
        "sha256sum",
        "store read + verify",
        "store write + fsync",
    }
