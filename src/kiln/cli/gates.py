"""``kiln gate ENV`` and ``kiln policy check``.

``kiln gate`` evaluates every gate the environment requires over evidence
files and prints each verdict with every reason; it exits 1 when any gate
blocks. It is the standalone evaluator the pipeline runner will call in
process (docs/gates.md).
"""

from __future__ import annotations

from pathlib import Path

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option
from kiln.errors import ExitCode


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


@click.command()
@click.argument("environment")
@click.option(
    "--sbom", type=click.Path(dir_okay=False), help="CycloneDX JSON SBOM of the artifact."
)
@click.option(
    "--osv",
    type=click.Path(),
    help="OSV database (directory or JSON file); default policies.vulnerabilities.database.",
)
@click.option("--tests", "tests_file", type=click.Path(dir_okay=False), help="Test results JSON.")
@click.option(
    "--trust", type=click.Path(dir_okay=False), help="Signature verification results JSON."
)
@click.option("--perf", type=click.Path(dir_okay=False), help="Side-by-side performance JSON.")
@click.option("--tag", "tags", multiple=True, help="Human tag of the artifact (repeatable).")
@click.option("--artifact", default="", help="Artifact digest, recorded in the report.")
@click.option(
    "--first-release",
    is_flag=True,
    help="There is no last good release: the performance gate passes without a baseline.",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False), help="Also write the verdicts as JUnit XML."
)
@output_option
@click.pass_obj
def gate(
    app: App,
    environment: str,
    sbom: str | None,
    osv: str | None,
    tests_file: str | None,
    trust: str | None,
    perf: str | None,
    tags: tuple[str, ...],
    artifact: str,
    first_release: bool,
    junit: str | None,
    output: str | None,
) -> int:
    """Evaluate ENVIRONMENT's gates over the given evidence; exit 1 if any blocks.

    Evidence that is not given makes its gate inconclusive, which blocks.
    """
    from kiln.core.gates.record import render_text, report_dict
    from kiln.ports.clock import SystemClock
    from kiln.services.gates import GateRequest, run_gates

    request = GateRequest(
        environment=environment,
        sbom=_path(sbom),
        osv=_path(osv),
        tests=_path(tests_file),
        trust=_path(trust),
        perf=_path(perf),
        tags=tags,
        artifact=artifact,
        first_release=first_release,
    )
    report = run_gates(app.spec(), app.spec_dir, request, clock=SystemClock())
    if junit:
        from kiln.core.pipeline.junit import gate_suite, to_xml
        from kiln.fsio import write_atomic

        write_atomic(Path(junit), to_xml(f"kiln gate {environment}", [gate_suite(report)]))
    emit(app, output or "text", report_dict(report), lambda: click.echo(render_text(report)))
    return int(ExitCode.OK if report.passed else ExitCode.FAILED)


@click.group()
def policy() -> None:
    """Check the spec's policies."""


@policy.command("check")
@click.option("--osv", type=click.Path(), help="OSV database to load instead of the spec's.")
@output_option
@click.pass_obj
def check(app: App, osv: str | None, output: str | None) -> int:
    """Compile every CEL rule against every environment, parse license lists, load
    the OSV database and list expired ignores. Exits 1 on any problem."""
    from kiln.ports.clock import SystemClock
    from kiln.services.gates import check_policies

    result = check_policies(app.spec(), app.spec_dir, clock=SystemClock(), osv=_path(osv))
    data = {
        "ok": result.ok,
        "problems": [{"where": p.where, "message": p.message} for p in result.problems],
        "warnings": [{"where": p.where, "message": p.message} for p in result.warnings],
        "advisories": result.advisories,
    }

    def human() -> None:
        for p in result.problems:
            click.echo(f"problem: {p.where}: {p.message}")
        for w in result.warnings:
            click.echo(f"warning: {w.where}: {w.message}")
        if result.advisories is not None:
            click.echo(f"OSV database: {result.advisories} advisories")
        click.echo("policies ok" if result.ok else f"{len(result.problems)} policy problem(s)")

    emit(app, output or "text", data, human)
    return int(ExitCode.OK if result.ok else ExitCode.FAILED)


@click.command()
@click.argument("candidate")
@click.option("--baseline", help="URL of the last good release; omit for a first release.")
@click.option("--duration", type=float, default=2.0, show_default=True, help="Seconds per run.")
@click.option("--rounds", type=int, default=3, show_default=True, help="Runs per side.")
@click.option("--concurrency", type=int, default=2, show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False), help="Also write the JSON for `kiln gate --perf`."
)
@output_option
@click.pass_obj
def perf(
    app: App,
    candidate: str,
    baseline: str | None,
    duration: float,
    rounds: int,
    concurrency: int,
    out: str | None,
    output: str | None,
) -> None:
    """Load-test CANDIDATE and --baseline side by side (alternating, one run) with hey.

    Loopback URLs only. Prints medians; --out writes the evidence file the
    performance gate reads.
    """
    import statistics

    from kiln.cli.render import to_json
    from kiln.core.gates.evidence import perf_to_dict
    from kiln.fsio import write_atomic
    from kiln.services.perf import measure

    with app.console(stderr=True).status(f"measuring {rounds} round(s) of {duration:g}s per side"):
        result = measure(
            candidate, baseline, duration=duration, rounds=rounds, concurrency=concurrency
        )
    data = perf_to_dict(result)
    if out:
        write_atomic(Path(out), (to_json(data) + "\n").encode())

    def human() -> None:
        sides = [("candidate", result.candidate)]
        if result.baseline is not None:
            sides.append(("baseline", result.baseline))
        for name, side in sides:
            click.echo(
                f"{name:<9}  p95 {statistics.median(side.p95_ms):8.1f} ms   "
                f"throughput {statistics.median(side.throughput_rps):8.1f} req/s   "
                f"(median of {len(side.p95_ms)})"
            )

    emit(app, output or "text", data, human)
