"""``kiln test``, ``kiln approve`` and ``kiln pipeline run|promote``: the CI/CD path.

Exit codes: 0 everything passed (or the pipeline reached its ``--until``); 1 a
test failed, a gate blocked, a rollout was rolled back, or a manual approval is
required (the message names the ``kiln approve`` to run); 2 invalid input.
SIGTERM is treated like Ctrl-C: every test instance is torn down before exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option
from kiln.errors import ExitCode

if TYPE_CHECKING:
    from kiln.services.pipeline import Run, Stage
    from kiln.services.promotion import Decision
    from kiln.services.testing import Outcome

_KEY_HELP = "Signing key: a name in .kiln/keys or a PEM private key file."
_JUNIT_HELP = "Also write the results as JUnit XML."


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so teardown runs exactly as for Ctrl-C."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (an embedding caller): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _actor() -> str:
    from kiln.services.attest import actor_from

    return os.environ.get("KILN_ACTOR") or actor_from(os.environ)


def _write_junit(path: str, name: str, suites: list[Any]) -> None:
    from kiln.core.pipeline.junit import to_xml
    from kiln.fsio import write_atomic

    write_atomic(Path(path), to_xml(name, suites))


def _test_line(app: App, outcome: Outcome) -> None:
    record = outcome.record
    mark = "[green]PASS[/]" if record.passed else "[red]FAIL[/]"
    detail = f"  {record.detail}" if record.detail else ""
    app.console().print(
        f"  {mark} {record.label:<32} {record.kind.value:<12} {outcome.seconds:6.2f}s{detail}"
    )
    if not record.passed and outcome.output:
        for line in outcome.output.rstrip().splitlines()[-8:]:
            app.console().print(f"      | {line}", markup=False, highlight=False)


@click.command("test")
@click.option("--artifact", "ref", default="latest", show_default=True, help="Digest or tag.")
@click.option("--key", default="default", show_default=True, help=_KEY_HELP)
@click.option("--junit", type=click.Path(dir_okay=False), help=_JUNIT_HELP)
@output_option
@click.pass_obj
def test(app: App, ref: str, key: str, junit: str | None, output: str | None) -> int:
    """Run the spec's tests against the built ARTIFACT (never the source tree).

    Unit tests run inside the artifact's files; the other kinds against a fresh
    instance of it ($KILN_TARGET_URL). Each result is signed and recorded.
    Exit 1 if any test failed.
    """
    from kiln.bootstrap import pipeline as boot
    from kiln.core.pipeline.junit import Case, Outcome, Suite

    spec = app.spec()
    state = app.state_dir()
    digest = boot.resolve(state, ref)
    text = output != "json"
    if text:
        app.console().print(f"testing {spec.service} {digest}")
    with _interruptible():
        outcomes = boot.run_tests(
            state, spec, digest, key=key, on_done=(lambda o: _test_line(app, o)) if text else None
        )
    passed = all(o.record.passed for o in outcomes)
    if junit:
        cases = tuple(
            Case(
                o.record.label,
                Outcome.PASSED if o.record.passed else Outcome.FAILED,
                o.seconds,
                classname=f"tests.{o.record.kind.value}",
                message=o.record.detail,
                output=o.output,
            )
            for o in outcomes
        )
        _write_junit(junit, f"kiln test {spec.service}", [Suite("tests", cases)])
    data = {"artifact": digest, "passed": passed, "tests": [o.to_json() for o in outcomes]}

    def human() -> None:
        if not outcomes:
            app.console().print("no tests in the spec: the tests gate will stay inconclusive")
        failed = sum(1 for o in outcomes if not o.record.passed)
        app.console().print(
            f"{len(outcomes) - failed} passed, {failed} failed; results signed and recorded"
        )

    emit(app, output or "text", data, human)
    return int(ExitCode.OK if passed else ExitCode.FAILED)


@click.command()
@click.argument("environment")
@click.argument("artifact", default="latest")
@click.option("--note", default="", help="Why; kept in the signed approval.")
@click.option("--key", default="default", show_default=True, help=_KEY_HELP)
@output_option
@click.pass_obj
def approve(
    app: App, environment: str, artifact: str, note: str, key: str, output: str | None
) -> None:
    """Sign your approval for ARTIFACT to enter ENVIRONMENT (`kiln attest approve`).

    The key must be listed in trust.yaml with kind approver for it to count
    toward the environment's approvals.required.
    """
    from kiln.bootstrap import pipeline as boot
    from kiln.bootstrap import trust
    from kiln.services.attest import approval_statement, attest
    from kiln.services.verify import find_environment

    spec = app.spec()
    find_environment(spec, environment)
    state = app.state_dir()
    digest = boot.resolve(state, artifact)
    from kiln.ports.clock import SystemClock

    approver = _actor()
    stmt = approval_statement(
        spec.service,
        digest,
        environment=environment,
        approver=approver,
        at=SystemClock().now(),
        note=note,
    )
    result = attest(
        stmt,
        signer=boot.signer_for(state, key),
        store=trust.attestation_store(state),
        recorder=trust.recorder(state),
        actor=approver,
    )
    data = {
        "artifact": digest,
        "environment": environment,
        "approver": approver,
        "attestation": result.digest,
        "keyId": result.key_id,
    }
    emit(
        app,
        output or "text",
        data,
        lambda: app.console().print(
            f"approved {digest} for {environment} as {approver} (key {result.key_id[:12]})"
        ),
    )


@click.group()
def pipeline() -> None:
    """Run the whole path, or one promotion."""


def _decision_text(app: App, decision: Decision) -> None:
    console = app.console()
    word = "[green]PROMOTABLE[/]" if decision.passed else "[red]BLOCKED[/]"
    console.print(f"{decision.environment}: {word} {decision.artifact}")
    for reason in decision.reasons:
        console.print(f"  - {reason}", markup=False)


@pipeline.command("promote")
@click.argument("environment")
@click.argument("artifact", default="latest")
@click.option("--dry-run", is_flag=True, help="Decide only; measure and record nothing.")
@click.option("--key", default="default", show_default=True, help=_KEY_HELP)
@output_option
@click.pass_obj
def promote_cmd(
    app: App, environment: str, artifact: str, dry_run: bool, key: str, output: str | None
) -> int:
    """May ARTIFACT enter ENVIRONMENT? Previous environment's evidence plus its gates.

    When ENVIRONMENT's gates include performance, first benchmarks ARTIFACT
    against the release serving it now and signs the figures (with --key).
    Records every gate verdict, a signed policy-verdict attestation and a
    promotion event (unless --dry-run). Deploying does the same check itself.
    Exit 1 when blocked, with every reason.
    """
    from kiln.bootstrap import pipeline as boot
    from kiln.errors import KilnError
    from kiln.services.benchmark import needs_measurement

    spec = app.spec()
    state = app.state_dir()
    digest = boot.resolve(state, artifact)
    policy = app.settings().trust_policy
    if not dry_run and needs_measurement(spec, environment):
        text = output != "json"
        console = app.console()
        with _interruptible(), console.status(f"perf {environment} …") as spinner:

            def progress(message: str) -> None:
                if not text:
                    return
                if console.is_terminal:
                    spinner.update(f"perf {environment} … {message}")
                else:
                    console.print(f"    … {message}", markup=False, highlight=False)

            measured = boot.measure(
                state, spec, digest, environment,
                signer=boot.signer_for(state, key), actor=_actor(), on_progress=progress,
            )  # fmt: skip
        if text:
            console.print(f"perf {environment}: {_perf_line(measured.summary())}", markup=False)
    decision = boot.check(state, spec, app.spec_dir, policy, digest, environment)
    if not dry_run:
        # A refusal raises; the decision already carries every reason, and the
        # promotion event is recorded either way.
        with contextlib.suppress(KilnError):
            decision = boot.promote(
                state, spec, app.spec_dir, policy, digest, environment, actor=_actor()
            )
    emit(app, output or "text", decision.to_json(), lambda: _decision_text(app, decision))
    return int(ExitCode.OK if decision.passed else ExitCode.FAILED)


def _perf_line(data: dict[str, Any]) -> str:
    """One line of medians: the candidate, and the last good release when there is one."""

    def side(figures: dict[str, Any]) -> str:
        return f"p95 {figures['p95_ms']:.1f} ms, {figures['throughput_rps']:.1f} req/s"

    runs = f"(medians of {data.get('rounds')} runs of {data.get('duration')}s)"
    candidate = f"candidate {side(data['candidate'])}"
    if data.get("last_good"):
        base = str(data.get("baseline") or "")
        return f"{candidate}; last good {base[:19]}… {side(data['last_good'])} {runs}"
    return f"{candidate}; no last good release in {data.get('environment')} {runs}"


_MARK = {
    "passed": "[green]✓[/]",
    "failed": "[red]✗[/]",
    "blocked": "[red]■[/]",
    "awaiting-approval": "[yellow]…[/]",
}


@pipeline.command("run")
@click.option(
    "--until", help="Stop after a stage (build, attest, test, gate) or an environment's deploy."
)
@click.option("--key", default="default", show_default=True, help=_KEY_HELP)
@click.option("--junit", type=click.Path(dir_okay=False), help=_JUNIT_HELP)
@click.option(
    "--revision",
    help="Build this commit of the repository, checked out in a fresh worktree "
    "(removed afterwards), instead of the working tree.",
)
@output_option
@click.pass_obj
def run(
    app: App,
    until: str | None,
    key: str,
    junit: str | None,
    revision: str | None,
    output: str | None,
) -> int:
    """Build, attest, test, then gate and deploy along the promotion path.

    Stops at the first failing stage or blocked gate (every reason printed and
    recorded) or where a signed manual approval is required. Exit 0 when the
    run reached prod (or --until), 1 otherwise. With --revision, the spec and
    the source come from that commit; keys, trust.yaml and state stay this
    checkout's.
    """
    from kiln.bootstrap import pipeline as boot

    state = app.state_dir()
    if revision is None:
        return _run(app, app.spec_file, None, until, key, junit, output)
    with _interruptible(), boot.revision_source(state, app.spec_file, revision) as source:
        commit, spec_file = source
        return _run(app, spec_file, commit, until, key, junit, output)


def _run(
    app: App,
    spec_file: Path,
    commit: str | None,
    until: str | None,
    key: str,
    junit: str | None,
    output: str | None,
) -> int:
    from kiln.bootstrap import pipeline as boot
    from kiln.services.pipeline import RunStatus, check_until, run_pipeline
    from kiln.services.spec import read_spec

    spec = app.spec() if commit is None else read_spec(spec_file)
    check_until(spec, until)
    state = app.state_dir()
    text = output != "json"
    console = app.console()
    status_box: list[Any] = []

    current: list[str] = []

    def on_stage(name: str, stage: Stage | None) -> None:
        if not text:
            return
        if stage is None:
            if status_box:
                status_box.pop().stop()
            current[:] = [name]
            spinner = console.status(f"{name} …")
            spinner.start()
            status_box.append(spinner)
            return
        if status_box:
            status_box.pop().stop()
        console.print(f"{_MARK[stage.outcome.value]} {name:<20} {stage.seconds:7.2f}s")
        extra = stage.data.get("digest") if name == "build" else None
        if extra:
            console.print(f"    {extra}  {stage.data.get('tag') or ''}", markup=False)
        if name.startswith("perf ") and stage.data:
            console.print(f"    {_perf_line(stage.data)}", markup=False)
        for reason in stage.reasons:
            console.print(f"    - {reason}", markup=False)

    def on_progress(message: str) -> None:
        if not text:
            return
        if console.is_terminal and status_box:
            status_box[-1].update(f"{' '.join(current)} … {message}")
        else:
            console.print(f"    … {message}", markup=False, highlight=False)

    if text and commit is not None:
        console.print(f"revision {commit} (a fresh checkout)", markup=False)
    stages = boot.Stages(
        state,
        spec,
        spec_file.resolve().parent,
        spec_file,
        app.settings().trust_policy,
        key=key,
        actor=_actor(),
        controller=app.settings().get("controller"),
        on_test=(lambda o: _test_line(app, o)) if text else None,
        on_progress=on_progress,
    )
    try:
        with _interruptible():
            result: Run = run_pipeline(spec, stages, until=until, on_stage=on_stage)
    finally:
        while status_box:
            status_box.pop().stop()
    if junit:
        _write_junit(junit, f"kiln pipeline {spec.service}", result.junit())

    def human() -> None:
        if result.status is RunStatus.SUCCEEDED:
            where = result.reached[-1] if result.reached else (until or "the end")
            console.print(f"pipeline succeeded: reached {where}")
        elif result.status is RunStatus.AWAITING_APPROVAL:
            env = result.stages[-1].name.removeprefix("gate ")
            console.print(
                f"pipeline paused: {env} needs a signed manual approval; run "
                f"`kiln approve {env} {result.digest}` with an approver key, then run again"
            )
        else:
            console.print(f"pipeline {result.status.value} at {result.stages[-1].name}")

    record = result.to_json()
    if commit is not None:
        record["revision"] = commit
    emit(app, output or "text", record, human)
    return int(ExitCode.OK if result.status is RunStatus.SUCCEEDED else ExitCode.FAILED)
