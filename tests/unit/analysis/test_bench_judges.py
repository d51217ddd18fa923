"""The judges benchmark still runs, and its vectorised replay agrees with the real judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks import bench_judges


def test_the_quick_benchmark_runs_and_cross_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert bench_judges.main(["--quick"]) == 0
    payload = json.loads((tmp_path / ".bench" / "judges.json").read_text())
    judges = {(row["scenario"], row["judge"]) for row in payload["rows"]}
    assert ("error 2x", "sequential") in judges and ("error 2x", "threshold") in judges
    assert payload["meta"]["cross_check_mismatches"] == 0
    assert "faster than Flagger's documented rule" in capsys.readouterr().out
