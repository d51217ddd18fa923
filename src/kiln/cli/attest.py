"""``kiln attest``: sign statements about an artifact, and show the ones it has.

kiln attest provenance DIGEST   SLSA v1 provenance of the build
kiln attest sbom DIGEST         CycloneDX SBOM of the dependency layer, with licenses
kiln attest approve DIGEST      an approval to enter an environment
kiln attest predicate DIGEST    any other predicate (test results, verdicts) from JSON
kiln attest show DIGEST         every attestation of the artifact
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option

if TYPE_CHECKING:
    from kiln.core.attest.statement import Statement
    from kiln.core.digest import Digest
    from kiln.services.attest import AttestResult

_KEY_HELP = "Signing key name in the state directory's keys/ (see `kiln keys`)."


def _digest(text: str) -> Digest:
    from kiln.core.digest import parse_digest

    return parse_digest(text, what="artifact digest")


def _subject_name(app: App, name: str | None) -> str:
    if name:
        return name
    if app.spec_file.exists():
        return app.spec().service
    return "artifact"


def _when(text: str | None, what: str) -> datetime:
    from kiln.errors import InvalidInput
    from kiln.ports.clock import SystemClock

    if text is None:
        return SystemClock().now()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{what} {text!r} has no time zone", hint="end it with Z for UTC")
    return moment


def _sign_and_store(app: App, stmt: Statement, key: str) -> AttestResult:
    from kiln.bootstrap import trust
    from kiln.services.attest import actor_from, attest, check_key_name

    state = app.state_dir()
    return attest(
        stmt,
        signer=trust.signer(state, check_key_name(key)),
        store=trust.attestation_store(state),
        recorder=trust.recorder(state),
        actor=actor_from(os.environ),
    )


def _report(app: App, output: str | None, result: AttestResult) -> None:
    from kiln.core.attest.predicates import short_name

    data = {
        "attestation": result.digest,
        "predicateType": result.predicate_type,
        "subjects": list(result.subjects),
        "keyId": result.key_id,
    }

    def human() -> None:
        subjects = ", ".join(result.subjects)
        click.echo(f"signed {short_name(result.predicate_type)} for {subjects}")
        click.echo(f"attestation {result.digest} by key {result.key_id[:12]}")

    emit(app, output or "text", data, human)


@click.group()
def attest() -> None:
    """Sign attestations about an artifact (by digest) and list them."""


@attest.command()
@click.argument("digest")
@click.option("--name", help="Subject name; defaults to the spec's service.")
@click.option("--source-uri", help="Source repository; detected from git or CI when omitted.")
@click.option("--revision", help="Source commit; detected from git or CI when omitted.")
@click.option(
    "--lock",
    "locks",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A lock file to record by digest (repeatable); default the spec's requirements.",
)
@click.option("--builder-id", help="Builder identity URI; the CI workflow or kiln's local one.")
@click.option("--invocation-id", help="This build's id; the CI run URL when in CI.")
@click.option("--started", help="When the build started (ISO 8601); default now.")
@click.option("--finished", help="When the build finished (ISO 8601); default now.")
@click.option("--key", default="default", show_default=True, help=_KEY_HELP)
@output_option
@click.pass_obj
def provenance(
    app: App,
    digest: str,
    name: str | None,
    source_uri: str | None,
    revision: str | None,
    locks: tuple[str, ...],
    builder_id: str | None,
    invocation_id: str | None,
    started: str | None,
    finished: str | None,
    key: str,
    output: str | None,
) -> None:
    """Sign SLSA v1 provenance for the artifact DIGEST."""
    from kiln.errors import InvalidInput
    from kiln.services.attest import SourceInfo, build_facts, git_source, provenance_statement

    subject = _digest(digest)
    if (source_uri is None) != (revision is None):
        raise InvalidInput("pass --source-uri and --revision together")
    source = (
        SourceInfo(source_uri, revision, False)
        if source_uri is not None and revision is not None
        else git_source(app.spec_dir)
    )
    lock_paths = [Path(p) for p in locks]
    if not lock_paths and app.spec_file.exists():
        requirements = app.spec().build.requirements
        if requirements:
            lock_paths = [app.spec_dir / requirements]
    facts = build_facts(
        subject_name=_subject_name(app, name),
        subject=subject,
        spec_path=app.spec_file.name,
        lock_files=lock_paths,
        env=os.environ,
        started_on=_when(started, "--started"),
        finished_on=_when(finished, "--finished"),
        source=source,
        builder_id=builder_id,
        invocation_id=invocation_id,
    )
    _report(app, output, _sign_and_store(app, provenance_statement(facts, os.environ), key))


@attest.command()
@click.argument("digest")
@click.option(
    "--requirements",
    type=click.Path(dir_okay=False),
    help="Hash-pinned requirements file; default the spec's build.requirements.",
)
@click.option("--name", help="Subject name; defaults to the spec's service.")
@click.option("--key", default="default", show_default=True, help=_KEY_HELP)
@output_option
@click.pass_obj
def sbom(
    app: App,
    digest: str,
    requirements: str | None,
    name: str | None,
    key: str,
    output: str | None,
) -> None:
    """Sign a CycloneDX SBOM of the artifact DIGEST's dependency layer.

    Components and licenses come from the installed packages' metadata when the
    artifact is in the local store; the pinned requirements add their hashes
    (and are the only source, without licenses, for an artifact not stored here).
    """
    from kiln.bootstrap.artifacts import store
    from kiln.errors import InvalidInput, NotFound
    from kiln.services.attest import artifact_sbom

    subject = _digest(digest)
    path = Path(requirements) if requirements else None
    if path is None and app.spec_file.exists() and app.spec().build.requirements:
        path = app.spec_dir / str(app.spec().build.requirements)
    pinned = None
    if path is not None:
        try:
            pinned = (path.read_text(encoding="utf-8"), str(path))
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read {path}: {exc}") from None
    stmt = artifact_sbom(
        _subject_name(app, name),
        subject,
        artifacts=store(app.state_dir()),
        requirements=pinned,
        timestamp=_when(None, "now"),
    )
    _report(app, output, _sign_and_store(app, stmt, key))


@attest.command()
@click.argument("digest")
@click.option("--environment", "-e", required=True, help="The environment approved.")
@click.option("--note", default="", help="Why; kept in the attestation.")
@click.option("--name", help="Subject name; defaults to the spec's service.")
@click.option("--key", default="default", show_default=True, help=_KEY_HELP)
@output_option
@click.pass_obj
def approve(
    app: App,
    digest: str,
    environment: str,
    note: str,
    name: str | None,
    key: str,
    output: str | None,
) -> None:
    """Sign an approval for the artifact DIGEST to enter ENVIRONMENT."""
    from kiln.services.attest import actor_from, approval_statement

    stmt = approval_statement(
        _subject_name(app, name),
        _digest(digest),
        environment=environment,
        approver=actor_from(os.environ),
        at=_when(None, "now"),
        note=note,
    )
    _report(app, output, _sign_and_store(app, stmt, key))


@attest.command()
@click.argument("digest")
@click.option(
    "--type",
    "predicate_type",
    required=True,
    help="A predicate URI or short name: test-result, policy-verdict, approval, ...",
)
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The predicate as a JSON object ('-' for stdin).",
)
@click.option("--name", help="Subject name; defaults to the spec's service.")
@click.option("--key", default="default", show_default=True, help=_KEY_HELP)
@output_option
@click.pass_obj
def predicate(
    app: App,
    digest: str,
    predicate_type: str,
    path: str,
    name: str | None,
    key: str,
    output: str | None,
) -> None:
    """Sign any predicate (a test result, a policy verdict) given as JSON."""
    from kiln.errors import InvalidInput, NotFound
    from kiln.services.attest import predicate_statement

    subject = _digest(digest)
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text()
        body = json.loads(raw)
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not a JSON document: {exc}") from None
    stmt = predicate_statement(_subject_name(app, name), subject, predicate_type, body)
    _report(app, output, _sign_and_store(app, stmt, key))


@attest.command()
@click.argument("digest")
@output_option
@click.pass_obj
def show(app: App, digest: str, output: str | None) -> None:
    """List every attestation stored for the artifact DIGEST (listing, not verifying)."""
    from kiln.bootstrap import trust
    from kiln.core.attest.predicates import short_name
    from kiln.services.attest import show as list_attestations

    subject = _digest(digest)
    views = list_attestations(subject, store=trust.attestation_store(app.state_dir()))
    data = {"subject": subject, "attestations": [v.to_json() for v in views]}

    def human() -> None:
        if not views:
            click.echo(f"no attestations for {subject}")
            return
        click.echo(f"{len(views)} attestation(s) for {subject}")
        for v in views:
            if v.problem:
                click.echo(f"  {v.digest}  UNREADABLE: {v.problem}")
                continue
            keys = ", ".join(k[:12] for k in v.key_ids) or "unsigned"
            click.echo(f"  {short_name(v.predicate_type):<15} {v.summary}")
            click.echo(f"  {'':<15} {v.digest}  key {keys}")
        click.echo("this lists what is stored; `kiln verify` decides what is trusted")

    emit(app, output or "text", data, human)
