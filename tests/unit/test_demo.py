"""The demo's own narration helpers: what it prints while a rollout runs."""

from __future__ import annotations

from pathlib import Path

from kiln.demo import answer_split, live_line, set_version


def test_a_live_line_shows_step_weight_and_the_analysis_figures() -> None:
    rollout = {
        "phase": "stepping",
        "step": 1,
        "steps": ["setWeight 20", "analysis up to 20s", "setWeight 100"],
        "weight": 20,
        "analysis": {
            "error-rate": {
                "canary": 0.31,
                "baseline": 0.0,
                "samples": 40.0,
                "log_evidence": 2.302585092994046,
                "log_threshold": 4.605170185988092,
            },
        },
    }
    assert live_line(rollout) == (
        "stepping · step 2/3 analysis up to 20s · new release 20% · "
        "error-rate 0.31 vs stable 0 over 40 samples, evidence 10 (fails at 100)"
    )


def test_a_finished_rollout_and_missing_figures_still_read() -> None:
    rollout = {"phase": "succeeded", "step": 3, "steps": ["a", "b", "c"], "weight": 100}
    assert live_line(rollout) == "succeeded · step 3/3 done · new release 100%"
    assert live_line({"phase": "starting"}) == "starting"
    huge = {"canary": 0.5, "samples": 50.0, "log_evidence": 5000.0, "log_threshold": 4.6}
    assert "evidence 1.01e+304" in live_line({**rollout, "analysis": {"e": huge}})


def test_the_answer_split_counts_only_what_changed() -> None:
    before = {"v1.0.0": 100, "v2.0.0": 0, "500s": 0}
    after = {"v1.0.0": 180, "v2.0.0": 20, "500s": 0}
    assert answer_split(before, after) == "v1.0.0 80% v2.0.0 20%"
    assert answer_split(after, after) == ""
    bad = {"v2.0.0": 170, "v3.0.0": 20, "500s": 10}
    assert answer_split({}, bad) == "v2.0.0 85% v3.0.0 10% 500s 5%"


def test_set_version_rewrites_only_the_build_block(tmp_path: Path) -> None:
    spec = tmp_path / "kiln.yaml"
    spec.write_text("service: hello\nbuild:\n  requirements: requirements.txt\nenvironments: []\n")
    set_version(tmp_path, "2.0.0")
    set_version(tmp_path, "3.0.0", error_rate="0.3")
    assert spec.read_text() == (
        "service: hello\nbuild:\n  requirements: requirements.txt\n"
        '  version: "3.0.0"\n  env: {APP_VERSION: "3.0.0", ERROR_RATE: "0.3"}\n'
        "environments: []\n"
    )
