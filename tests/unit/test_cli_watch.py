"""`kiln status --watch`: the plain line (non-TTY) and the live view's content."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from kiln.cli.deploy import watch_line, watch_view

ENV: dict[str, Any] = {
    "name": "prod",
    "note": "analysis running",
    "error": "",
    "stable": {"id": "rel-old"},
    "rollout": {
        "phase": "stepping",
        "step": 1,
        "weight": 50,
        "reason": "",
        "steps": ["setWeight 50", "analysis 8s", "setWeight 100"],
        "analysis": {"errors": {"canary_rate": 0.0125, "samples": 40}},
    },
}


def test_the_plain_line_has_step_weights_figures_and_verdict() -> None:
    assert watch_line(ENV) == (
        "prod: stepping, step 2/3 analysis 8s, new 50% / stable 50%, "
        "errors canary_rate=0.0125 samples=40, analysis running"
    )
    assert watch_line({"name": "dev", "stable": {"id": "rel-1"}}) == (
        "dev: stable rel-1, no rollout"
    )


def test_the_live_view_marks_the_current_step() -> None:
    console = Console(record=True, width=100, color_system=None)
    console.print(watch_view([ENV]))
    text = console.export_text()
    assert "  ✓ setWeight 50" in text
    assert "  ▶ analysis 8s" in text
    assert "    setWeight 100" in text
    assert "canary_rate=0.0125" in text


def test_the_plain_line_shows_a_fresh_baseline_and_what_stable_keeps() -> None:
    rollout = ENV["rollout"] | {
        "weight": 25,
        "baseline": {"kind": "fresh", "release": "rel-old+baseline", "instances": 1},
    }
    line = watch_line(ENV | {"rollout": rollout})
    assert "new 25% / fresh baseline 25% (1 instance(s)) / stable 50%" in line
