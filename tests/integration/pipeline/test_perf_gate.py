"""`kiln pipeline run` feeds the performance gate itself.

v1 of the example is deployed to dev for real (through the controller, on
demand): with nothing in dev yet, its benchmark has no baseline and the gate
passes saying so. v2 is then benchmarked side by side against v1 — both fresh
instances, alternated `hey` runs — and judged. The latency lives in the
artifact (`build.env` bakes EXTRA_LATENCY_MS into the image config), so v2 with
twice v1's latency is a 2x regression of the artifact, not of its config.
Durations are short (three alternated 1 s runs per side); the added latency is
large against a loaded machine's noise, and the tests assert on the verdict.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from kiln.bootstrap.pipeline import provider_for_tests
from kiln.cli.main import main
from tests.integration.pipeline.conftest import Project, git

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("hey") is None, reason="the load generator hey is missing"),
]

# The limits leave room for a loaded 2-core CI machine, where a run's p95 can
# move by tens of ms either way: a 2x regression is far beyond 1.5x, an
# unchanged version far within it.
BUDGET = (
    "policies:\n  performance:\n    duration: 1s\n    rounds: 3\n    concurrency: 4\n"
    "    maxP95Ratio: 1.5\n    minThroughputRatio: 0.6\n"
    "environments:\n"
)


@pytest.fixture
def live(project: Project) -> Iterator[Project]:
    """dev gated on performance; v1 (200 ms of added latency) already serving dev."""
    try:
        project.edit_spec("environments:\n", BUDGET)
        project.edit_spec(
            "  - name: dev\n", "  - name: dev\n    gates: [signed, tests, performance]\n"
        )
        project.edit_spec("  port: 8000\n", '  port: 8000\n  env: {EXTRA_LATENCY_MS: "200"}\n')
        code, out, err = project.kiln("pipeline", "run", "--until", "dev")
        assert code == 0, out + err
        assert "no last good release in dev" in out
        (first,) = _verdicts(project)
        assert first["outcome"] == "passed"
        yield project
    finally:
        main(["down"])
    assert provider_for_tests(project.root / ".kiln").list() == []  # benchmarks cleaned up


def _verdicts(project: Project) -> list[dict[str, object]]:
    return [
        e["details"]
        for e in project.events("gate.verdict")
        if e["details"]["gate"] == "performance"
    ]


def test_a_2x_latency_regression_is_blocked_with_both_p95s_and_the_limit(live: Project) -> None:
    live.edit_spec('EXTRA_LATENCY_MS: "200"', 'EXTRA_LATENCY_MS: "400"')
    code, out, err = live.kiln("pipeline", "run", "--until", "dev")
    with live.capsys.disabled():  # `pytest -s` shows the figures
        print(out)
    assert code == 1, out + err
    assert "perf dev" in out and "last good sha256:" in out
    blocked = out.split("gate dev", 1)[1]
    assert "performance: p95 latency ratio" in blocked
    assert "exceeds the budget 1.50x" in blocked
    assert "ms vs last good" in blocked  # both p95 figures, candidate first
    assert "pipeline blocked at gate dev" in out
    verdict = _verdicts(live)[-1]
    assert verdict["outcome"] == "failed"
    reasons = verdict["reasons"]
    assert isinstance(reasons, list)
    assert any(
        "p95 latency ratio" in r and "1.50x" in r and "ms vs last good" in r for r in reasons
    )
    (promotion,) = [p for p in live.events("promotion") if p["details"]["outcome"] == "blocked"]
    assert promotion["subject"]["environment"] == "dev"
    assert any(
        r.startswith("performance: p95 latency ratio") for r in promotion["details"]["reasons"]
    )


def test_an_unchanged_version_passes_the_performance_gate(live: Project) -> None:
    (live.root / "NOTES.md").write_text("same code, same latency: a docs-only change\n")
    git(live.root, "add", "NOTES.md")
    git(live.root, "commit", "-qm", "docs only")
    code, out, err = live.kiln("pipeline", "run", "--until", "dev")
    with live.capsys.disabled():  # `pytest -s` shows the figures
        print(out)
    assert code == 0, out + err
    assert "last good sha256:" in out and "pipeline succeeded: reached dev" in out
    _, second = _verdicts(live)  # v1's (no baseline), then v2's, recorded by the deploy
    assert second["outcome"] == "passed", second
    promotions = [p["details"]["outcome"] for p in live.events("promotion")]
    assert promotions == ["promoted", "promoted"]
