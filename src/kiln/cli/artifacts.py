"""``kiln build``, ``kiln rebuild``, ``kiln push``/``pull`` and ``kiln artifacts …``.

Each command parses its flags, calls one service function and renders the
result (text, or JSON with ``--output json``). Progress events from the
services drive a rich progress display on stderr.

Exit codes: 0 ok; 1 refused or failed (a moved tag, a revoked artifact, a
verification or rebuild mismatch); 2 invalid input; 3 internal error.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_format, output_option
from kiln.core.artifacts.progress import Event, Listener, StepAdvanced, StepFinished, StepStarted


def _actor() -> str:
    name = os.environ.get("KILN_ACTOR")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextlib.contextmanager
def _progress(app: App, fmt: str) -> Iterator[Listener]:
    """A listener that shows each step on stderr; silent for JSON and --quiet."""
    console = app.console(stderr=True)
    if fmt == "json" or app.verbosity < 0 or not console.is_terminal:

        def quiet(event: Event) -> None:
            if isinstance(event, StepFinished) and app.verbosity > 0:
                console.print(f"{event.step}: {event.detail}")

        yield quiet
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=console
    ) as bar:

        def listen(event: Event) -> None:
            if isinstance(event, StepStarted):
                tasks[event.step] = bar.add_task(event.step, total=event.total or None)
            elif isinstance(event, StepAdvanced) and event.step in tasks:
                bar.update(tasks[event.step], completed=event.done)
            elif isinstance(event, StepFinished):
                task = tasks.pop(event.step, None)
                if task is None:
                    task = bar.add_task(event.step, total=1)
                label = f"{event.step}: {'cached' if event.cached else event.detail}"
                bar.update(task, description=label, completed=bar.tasks[task].total or 1)

        yield listen


# --- build / rebuild ---------------------------------------------------------------------


@click.command()
@click.option(
    "--allow-dirty",
    is_flag=True,
    help="Build from uncommitted changes; the artifact records that it is dirty.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False),
    help="Also write a standalone OCI layout to this new directory.",
)
@click.option(
    "--sign",
    is_flag=True,
    help="Also sign SLSA provenance of this build and the SBOM of its dependencies.",
)
@click.option(
    "--key", default="default", show_default=True, help="Signing key for --sign (`kiln keys`)."
)
@output_option
@click.pass_obj
def build(
    app: App,
    allow_dirty: bool,
    export_dir: str | None,
    sign: bool,
    key: str,
    output: str | None,
) -> None:
    """Build the spec's service into an OCI image in the local store.

    Deterministic: the same commit gives the same digest on any machine.
    With --sign, the build's provenance and SBOM are signed and stored too
    (one CI step); the image bytes are the same either way.
    """
    from kiln.bootstrap.artifacts import builder
    from kiln.ports.clock import SystemClock
    from kiln.services.build import run_build

    fmt = output_format(app, output)
    spec = app.spec()
    signer: Any = None
    if sign:
        from kiln.bootstrap import trust
        from kiln.services.attest import check_key_name

        signer = trust.signer(app.state_dir(), check_key_name(key))  # fail before building
    started = SystemClock().now()
    with _progress(app, fmt) as listen:
        made = builder(app.state_dir(), on_event=listen)
        result = run_build(
            made,
            spec,
            app.spec_dir,
            allow_dirty=allow_dirty,
            actor=_actor(),
            spec_file=app.spec_file,
        )
    finished = SystemClock().now()
    data = result.to_json()
    signed: list[Any] = []
    if sign:
        signed = _sign_build(app, made.store, result, signer, started, finished)
        data["attestations"] = [
            {"attestation": r.digest, "predicateType": r.predicate_type, "keyId": r.key_id}
            for r in signed
        ]
    if export_dir:
        from kiln.services.artifacts import export_layout

        export_layout(made.store, result.digest, Path(export_dir))
        data["exported"] = export_dir

    def human() -> None:
        console = app.console()
        cached = sum(1 for layer in result.layers if layer.cached)
        console.print(f"built {result.tag or '(untagged)'}")
        console.print(f"  digest  {result.digest}")
        console.print(f"  at      {result.created}")
        console.print(
            f"  layers  {len(result.layers)} ({cached} unchanged) · {result.seconds:.2f}s"
        )
        if result.inputs.dirty:
            console.print("  [yellow]dirty[/]: built from uncommitted changes (recorded)")
        if export_dir:
            console.print(f"  exported to {export_dir}")
        for item in signed:
            console.print(f"  signed  {item.predicate_type} → {item.digest}")

    emit(app, fmt, data, human)


def _sign_build(
    app: App, store: Any, result: Any, signer: Any, started: Any, finished: Any
) -> list[Any]:
    """Provenance and SBOM of the build just made, from its own facts."""
    from kiln.bootstrap import trust
    from kiln.services.attest import actor_from, attest_build, build_facts, build_source

    state = app.state_dir()
    spec = app.spec()
    inputs = result.inputs
    locks = [app.spec_dir / spec.build.requirements] if spec.build.requirements else []
    facts = build_facts(
        subject_name=spec.service,
        subject=result.digest,
        spec_path=app.spec_file.name,
        lock_files=locks,
        env=os.environ,
        started_on=started,
        finished_on=finished,
        source=build_source(inputs.revision, inputs.remote, inputs.dirty, app.spec_dir),
    )
    requirements = (locks[0].read_text(encoding="utf-8"), str(locks[0])) if locks else None
    return list(
        attest_build(
            facts=facts,
            artifacts=store,
            requirements=requirements,
            env=os.environ,
            signer=signer,
            store=trust.attestation_store(state),
            recorder=trust.recorder(state),
            actor=actor_from(os.environ),
        )
    )


@click.command()
@click.option("--verify", "ref", required=True, help="Digest or tag of the artifact to rebuild.")
@output_option
@click.pass_obj
def rebuild(app: App, ref: str, output: str | None) -> None:
    """Rebuild an artifact from its recorded revision and say whether the digest matches."""
    from kiln.bootstrap.artifacts import builder, source_repo, store
    from kiln.services.rebuild import rebuild_verify

    fmt = output_format(app, output)
    local = store(app.state_dir())
    with _progress(app, fmt) as listen:
        report = rebuild_verify(
            local,
            ref,
            source=source_repo(),
            repo_dir=app.spec_dir,
            spec_name=app.spec_file.name,
            make_builder=lambda state: builder(state, on_event=listen),
        )

    def human() -> None:
        console = app.console()
        if report.matches:
            console.print(f"reproduced {report.expected} from {report.revision[:12]}")
            return
        console.print(f"[red]mismatch[/]: expected {report.expected}, rebuilt {report.rebuilt}")
        for layer in report.layers:
            console.print(
                f"  layer {layer.index} ({layer.role}): {layer.expected} ≠ {layer.rebuilt}"
            )
            for path, how in list(layer.files.items())[:50]:
                console.print(f"    {path}: {how}")
        for key, (old, new) in report.labels.items():
            console.print(f"  label {key}: {old!r} ≠ {new!r}")

    emit(app, fmt, report.to_json(), human)
    if not report.matches:
        raise click.exceptions.Exit(1)


# --- the artifacts group -----------------------------------------------------------------


@click.group()
def artifacts() -> None:
    """Inspect and manage artifacts in the local store."""


def _store(app: App) -> Any:
    from kiln.bootstrap.artifacts import store

    return store(app.state_dir())


@artifacts.command("list")
@output_option
@click.pass_obj
def list_(app: App, output: str | None) -> None:
    """List artifacts, newest last, with their tags and revocations."""
    from kiln.services.artifacts import list_artifacts

    fmt = output_format(app, output)
    views = list_artifacts(_store(app))

    def human() -> None:
        console = app.console()
        if not views:
            console.print("no artifacts yet; run `kiln build`")
        for view in views:
            state = " [red]REVOKED[/]" if view.revoked else ""
            tags = ", ".join(view.tags) or "(untagged)"
            console.print(f"{view.digest[:19]}  {view.created[:19]}  {tags}{state}")

    emit(app, fmt, [v.to_json() for v in views], human)


@artifacts.command()
@click.argument("ref")
@output_option
@click.pass_obj
def show(app: App, ref: str, output: str | None) -> None:
    """Show an artifact's manifest, config, labels and layers."""
    from kiln.services.artifacts import show as describe

    fmt = output_format(app, output)
    data = describe(_store(app), ref)

    def human() -> None:
        console = app.console()
        console.print(f"{data['digest']}  {', '.join(data['tags']) or '(untagged)'}")
        if data["revoked"]:
            console.print(f"  [red]revoked[/]: {data['revoked']['reason']}")
        console.print(f"  cmd     {' '.join(data['cmd'] or [])}")
        console.print(f"  created {data['created']}  size {data['size']}")
        for key, value in sorted(data["labels"].items()):
            console.print(f"  {key}={value}")
        for layer in data["layers"]:
            role = layer.get("annotations", {}).get("dev.kiln.layer", "")
            console.print(f"  layer {layer['digest']}  {layer['size']:>12}  {role}")

    emit(app, fmt, data, human)


@artifacts.command()
@click.argument("ref")
@click.option("--unpacked", is_flag=True, help="Also re-verify the unpacked tree of instances.")
@output_option
@click.pass_obj
def verify(app: App, ref: str, unpacked: bool, output: str | None) -> None:
    """Re-hash every blob of an artifact (and its unpacked tree); exit 1 on any difference."""
    from kiln.services.artifacts import verify as check

    fmt = output_format(app, output)
    instances = app.state_dir() / "instances" if unpacked else None
    with _progress(app, fmt) as listen:
        report = check(_store(app), ref, instances=instances, on_event=listen)

    def human() -> None:
        console = app.console()
        console.print(f"{report.digest}: {report.blobs} blobs, {report.bytes} bytes verified")
        changes = report.unpacked
        if changes is not None:
            if changes.empty:
                console.print(f"unpacked tree {report.unpacked_path}: unchanged")
            for label, paths in (
                ("changed", changes.changed),
                ("added", changes.added),
                ("removed", changes.removed),
            ):
                for path in paths:
                    console.print(f"  [red]{label}[/]: {path}")

    emit(app, fmt, report.to_json(), human)
    if not report.ok:
        raise click.exceptions.Exit(1)


@artifacts.command()
@click.argument("ref")
@click.argument("tag")
@click.pass_obj
def tag(app: App, ref: str, tag: str) -> None:
    """Add a tag to an artifact. Tags never move: a taken tag is refused."""
    from kiln.bootstrap.artifacts import recorder
    from kiln.ports.clock import SystemClock
    from kiln.services.artifacts import add_tag

    state = app.state_dir()
    record = add_tag(
        _store(app), ref, tag, clock=SystemClock(), recorder=recorder(state), actor=_actor()
    )
    app.console().print(f"{record.tag} → {record.digest}")


@artifacts.command()
@click.argument("ref")
@click.option("--reason", required=True, help="Why; recorded in the ledger.")
@click.pass_obj
def revoke(app: App, ref: str, reason: str) -> None:
    """Revoke an artifact: it can never be promoted or deployed again."""
    from kiln.bootstrap.artifacts import recorder
    from kiln.ports.clock import SystemClock
    from kiln.services.artifacts import revoke as do_revoke

    state = app.state_dir()
    record = do_revoke(
        _store(app),
        ref,
        reason=reason,
        clock=SystemClock(),
        recorder=recorder(state),
        actor=_actor(),
    )
    app.console().print(f"revoked {record.digest} ({record.reason})")


@artifacts.command()
@click.option("--keep-recent", default=5, show_default=True, help="Newest builds kept per service.")
@click.option(
    "--keep-per-env", default=3, show_default=True, help="Last releases kept per environment."
)
@click.option(
    "--grace",
    default=900.0,
    show_default=True,
    help="Seconds an unused blob is spared (a build may be writing it).",
)
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@output_option
@click.pass_obj
def gc(
    app: App, keep_recent: int, keep_per_env: int, grace: float, dry_run: bool, output: str | None
) -> None:
    """Delete artifacts and blobs the retention policy does not keep; report what was freed.

    Keeps every artifact a live release references and the last N of each
    environment, both read from the controller's desired state (state.db).
    """
    from kiln.bootstrap.artifacts import release_history
    from kiln.core.artifacts.retention import Policy
    from kiln.services.artifacts import gc as collect

    fmt = output_format(app, output)
    namespace = app.spec().service if app.spec_file.exists() else None
    with release_history(app.state_dir(), namespace=namespace) as history:
        report = collect(
            _store(app),
            policy=Policy(keep_per_environment=keep_per_env, keep_recent=keep_recent),
            history=history,
            dry_run=dry_run,
            grace_seconds=grace,
        )

    def human() -> None:
        console = app.console()
        verb = "would free" if dry_run else "freed"
        deleted = len(report.plan.delete_blobs) - len(report.skipped_young)
        console.print(
            f"{verb} {report.freed_bytes} bytes ({_mib(report.freed_bytes)}): "
            f"{len(report.plan.delete_artifacts)} artifacts, {deleted} blobs; "
            f"kept {len(report.plan.keep)}"
        )
        if not report.desired_state:
            console.print("  no desired state (state.db) yet: only --keep-recent protects builds")
        for env, digests in sorted(report.environments.items()):
            console.print(f"  {env}: {len(digests)} artifacts in its release history")
        for digest, why in sorted(report.plan.keep.items()):
            console.print(f"  keep   {digest[:19]}  {why}")
        for digest in report.plan.delete_artifacts:
            console.print(f"  delete {digest[:19]}  {report.plan.reasons.get(digest, '')}")

    emit(app, fmt, report.to_json(), human)


def _mib(size: int) -> str:
    if size < 1 << 20:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1 << 20):.1f} MiB"


@artifacts.command()
@click.argument("ref")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", help="Reference name in index.json (default: the artifact's tag).")
@click.option(
    "--gzip",
    "gzip_layers",
    is_flag=True,
    help="Compress layers (deterministic gzip); the copy gets its own manifest digest.",
)
@click.pass_obj
def export(app: App, ref: str, directory: str, name: str | None, gzip_layers: bool) -> None:
    """Write an artifact as a standalone OCI image layout (skopeo and podman read it)."""
    from kiln.services.artifacts import export_layout

    path = export_layout(_store(app), ref, Path(directory), ref_name=name, gzip_layers=gzip_layers)
    app.console().print(f"wrote {path}")


@artifacts.command()
@click.argument("ref")
@click.pass_obj
def unpack(app: App, ref: str) -> None:
    """Unpack an artifact read-only under .kiln/instances and print the rootfs path."""
    from kiln.bootstrap.artifacts import unpacker
    from kiln.services.artifacts import resolve_ref

    state = app.state_dir()
    rootfs = unpacker(state)(resolve_ref(_store(app), ref))
    click.echo(str(rootfs))


_REGISTRY = click.option(
    "--registry", required=True, envvar="KILN_REGISTRY", help="http(s)://host:port [KILN_REGISTRY]."
)
_INSECURE = click.option("--insecure", is_flag=True, help="Skip TLS certificate checks.")


@click.command()
@click.argument("ref")
@_REGISTRY
@click.option("--repository", help="Repository name (default: the service name).")
@_INSECURE
@output_option
@click.pass_obj
def push(
    app: App, ref: str, registry: str, repository: str | None, insecure: bool, output: str | None
) -> None:
    """Push an artifact by digest, then its tags (which never move), to a registry."""
    from kiln.bootstrap.artifacts import registry as connect
    from kiln.bootstrap.trust import attestation_store
    from kiln.services.artifacts import push as upload

    fmt = output_format(app, output)
    client = connect(registry, insecure=insecure)
    with contextlib.closing(client), _progress(app, fmt) as listen:
        report = upload(
            _store(app),
            client,
            ref,
            repository=repository,
            on_event=listen,
            attestations=attestation_store(app.state_dir()),
        )

    def human() -> None:
        app.console().print(
            f"pushed {report.digest} to {report.repository}: {report.sent} blobs sent, "
            f"{report.skipped} already there; tags {', '.join(report.tags) or '(none)'}"
        )
        _attestation_line(app, report.attestations)

    emit(app, fmt, report.to_json(), human)


@click.command()
@click.argument("reference")
@_REGISTRY
@_INSECURE
@output_option
@click.pass_obj
def pull(app: App, reference: str, registry: str, insecure: bool, output: str | None) -> None:
    """Pull REPOSITORY:TAG or REPOSITORY@sha256:… into the local store, verifying every blob."""
    from kiln.bootstrap.artifacts import registry as connect
    from kiln.bootstrap.trust import attestation_store
    from kiln.errors import UsageError
    from kiln.ports.clock import SystemClock
    from kiln.services.artifacts import pull as download

    if "@" in reference:
        repository, ref = reference.split("@", 1)
    elif ":" in reference:
        repository, ref = reference.rsplit(":", 1)
    else:
        raise UsageError(
            f"{reference!r} names no tag or digest", hint="use REPO:TAG or REPO@DIGEST"
        )
    fmt = output_format(app, output)
    client = connect(registry, insecure=insecure)
    with contextlib.closing(client), _progress(app, fmt) as listen:
        report = download(
            _store(app),
            client,
            repository,
            ref,
            clock=SystemClock(),
            on_event=listen,
            attestations=attestation_store(app.state_dir()),
        )

    def human() -> None:
        app.console().print(
            f"pulled {report.digest}: {report.sent} blobs fetched, {report.skipped} already here"
        )
        _attestation_line(app, report.attestations)

    emit(app, fmt, report.to_json(), human)


def _attestation_line(app: App, report: Any) -> None:
    if report is not None:
        app.console().print(
            f"attestations: {report.transferred} transferred, {report.already} already there "
            f"(via {report.via})"
        )


artifacts.add_command(push)
artifacts.add_command(pull)
