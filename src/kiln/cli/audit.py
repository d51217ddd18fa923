"""``kiln audit ...``, ``kiln history`` and ``kiln diff``: the ledger's commands.

Exit codes: 0 verified / found; 1 tampering detected, a refused or failed check;
2 bad input (a malformed time, a missing file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_format, output_option

if TYPE_CHECKING:
    from kiln.bootstrap.ledger import Ledger
    from kiln.core.ledger.events import Event
    from kiln.services.audit import VerifyResult


@contextmanager
def _ledger(app: App) -> Iterator[Ledger]:
    from kiln.bootstrap.ledger import open_ledger

    ledger = open_ledger(app.state_dir())
    try:
        yield ledger
    finally:
        ledger.close()


def _when(text: str) -> datetime:
    from kiln.core.ledger.when import parse_when

    return parse_when(text, now=datetime.now(UTC))


def _event_json(event: Event) -> dict[str, Any]:
    return event.to_json()


def _short(value: str | None, n: int = 19) -> str:
    if not value:
        return "-"
    return value if len(value) <= n else value[: n - 1] + "…"


@click.group()
def audit() -> None:
    """Verify, export, query and prove the tamper-evident ledger."""


def _verify_json(result: VerifyResult) -> dict[str, Any]:
    from kiln.core.ledger.verify import Verified

    outcome = result.outcome
    data: dict[str, Any] = {"origin": result.origin, "ok": result.ok}
    if isinstance(outcome, Verified):
        data.update(size=outcome.size, root=outcome.root.hex(), checkpoints=outcome.checkpoints)
    else:
        data.update(firstBadSeq=outcome.seq, upto=outcome.upto, reason=outcome.reason)
    if result.signed is not None:
        data["signedCheckpoint"] = result.signed.note.decode("utf-8")
    return data


@audit.command()
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A checkpoint saved earlier; the log must still match it. Repeatable.",
)
@click.option(
    "--export",
    "export_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Verify an export file instead of the database (needs --key only).",
)
@click.option(
    "--proof",
    "proof_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Verify an inclusion proof from `kiln audit prove -o json` (needs --key only).",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ledger's public key (PEM); default: the key in the state directory.",
)
@click.option("--deep", is_flag=True, help="Also check every stored Merkle node (proof data).")
@output_option
@click.pass_obj
def verify(
    app: App,
    checkpoints: tuple[Path, ...],
    export_file: Path | None,
    proof_file: Path | None,
    key: Path | None,
    deep: bool,
    output: str | None,
) -> int:
    """Check every event, hash and checkpoint; exit 1 naming the first bad seq.

    On success a new checkpoint is signed and saved under .kiln/ledger/checkpoints/.
    """
    from kiln.services import audit as svc

    fmt = output or "text"
    if proof_file is not None or export_file is not None:
        if key is None:
            raise click.UsageError("--export and --proof need --key PUB.pem")
        from kiln.adapters.keys.file import load_public_pem

        public = load_public_pem(key)
        if proof_file is not None:
            return _verify_proof(app, fmt, proof_file, public)
    if export_file is not None:
        result = svc.verify_export(export_file, public_key=public, extra_checkpoints=checkpoints)
    else:
        fmt = output_format(app, output)
        with _ledger(app) as ledger:
            signer = ledger.signer() if key is None else None
            public = ledger.public_key(key)
            result = svc.verify(
                ledger.store,
                public_key=public,
                checkpoint_dir=ledger.checkpoint_dir,
                extra_checkpoints=checkpoints,
                signer=signer,
                deep=deep,
            )

    def human() -> None:
        from kiln.core.ledger.verify import Verified

        outcome = result.outcome
        if isinstance(outcome, Verified):
            click.echo(
                f"ledger verified: {outcome.size} events, root {outcome.root.hex()}, "
                f"{outcome.checkpoints} checkpoint match(es) from {result.checkpoint_sources} "
                "note(s)"
            )
            if result.signed is not None:
                click.echo(f"signed checkpoint at size {result.signed.size}")
        else:
            click.echo(f"ledger TAMPERED at {outcome.where}: {outcome.reason}")

    emit(app, fmt, _verify_json(result), human)
    return 0 if result.ok else 1


def _verify_proof(app: App, fmt: str, path: Path, public: bytes) -> int:
    from kiln.errors import InvalidInput, NotFound
    from kiln.services import audit as svc

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"proof file {path} does not exist") from None
    except ValueError:
        raise InvalidInput(f"{path} is not JSON") from None
    event = svc.verify_proof(document, public_key=public)
    emit(
        app,
        fmt,
        {"ok": True, "seq": event.seq, "event": event.to_json()},
        lambda: click.echo(f"proof verified: event {event.seq} ({event.kind}) is in the ledger"),
    )
    return 0


@audit.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (default: ledger-export.jsonl in the current directory).",
)
@click.pass_obj
def export(app: App, out: Path | None) -> None:
    """Write every event as JSON lines plus a signed checkpoint over them."""
    from kiln.services import audit as svc

    target = out or Path("ledger-export.jsonl")
    with _ledger(app) as ledger:
        signed = svc.export(
            ledger.store, target, signer=ledger.signer(), checkpoint_dir=ledger.checkpoint_dir
        )
    click.echo(f"exported {signed.size} events to {target}")
    click.echo(f"verify with: kiln audit verify --export {target} --key PUB.pem")


@audit.command(name="log")
@click.option("--env", "environment", help="Only this environment.")
@click.option("--artifact", help="Only this artifact digest.")
@click.option("--since", help='Only events at or after this time ("30d", "2026-11-20 14:02").')
@click.option("--kind", "kinds", multiple=True, help="Only this kind (repeatable), e.g. rollback.")
@output_option
@click.pass_obj
def log_(
    app: App,
    environment: str | None,
    artifact: str | None,
    since: str | None,
    kinds: tuple[str, ...],
    output: str | None,
) -> None:
    """List events, oldest first."""
    from kiln.core.ledger.kinds import EventKind
    from kiln.services import audit as svc

    fmt = output_format(app, output)
    moment = _when(since) if since else None
    known = {str(k): k for k in EventKind}
    for kind in kinds:
        if kind not in known:
            raise click.BadParameter(
                f"{kind!r} is not an event kind; one of: {', '.join(sorted(known))}",
                param_hint="--kind",
            )
    with _ledger(app) as ledger:
        events = svc.log(
            ledger.store,
            environment=environment,
            artifact=artifact,
            since=moment,
            kinds=[known[k] for k in kinds] or None,
        )

    def human() -> None:
        for e in events:
            subject = " ".join(
                f"{name}={value}"
                for name, value in (
                    ("env", e.environment),
                    ("release", e.release),
                    ("artifact", _short(e.artifact) if e.artifact else None),
                )
                if value
            )
            stamp = e.time.strftime("%Y-%m-%dT%H:%M:%SZ")
            click.echo(f"{e.seq:>6}  {stamp}  {e.kind:<16} {e.actor:<12} {subject}".rstrip())

    emit(app, fmt, {"events": [_event_json(e) for e in events]}, human)


@audit.command()
@click.argument("seq", type=int)
@output_option
@click.pass_obj
def prove(app: App, seq: int, output: str | None) -> None:
    """Print an inclusion proof of event SEQ, verifiable offline with the public key."""
    from kiln.services import audit as svc

    fmt = output_format(app, output)
    with _ledger(app) as ledger:
        proof = svc.prove(
            ledger.store, seq, signer=ledger.signer(), checkpoint_dir=ledger.checkpoint_dir
        )

    def human() -> None:
        click.echo(f"event {proof.seq} is leaf {proof.seq} of a tree of {proof.tree_size}")
        click.echo(f"root {proof.root.hex()}")
        for i, h in enumerate(proof.path):
            click.echo(f"  path[{i}] {h.hex()}")
        click.echo("checkpoint:")
        click.echo(proof.checkpoint.decode("utf-8"), nl=False)
        click.echo("save with -o json and check with: kiln audit verify --proof FILE --key PUB.pem")

    emit(app, fmt, proof.to_json(), human)


@audit.command()
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@output_option
@click.pass_obj
def consistency(app: App, old: Path, output: str | None) -> int:
    """Prove the ledger today extends the checkpoint OLD (RFC 6962 consistency proof)."""
    from kiln.errors import NotFound
    from kiln.services import audit as svc

    fmt = output_format(app, output)
    try:
        note = old.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"checkpoint file {old} does not exist") from None
    with _ledger(app) as ledger:
        proof = svc.prove_consistency(
            ledger.store, note, signer=ledger.signer(), checkpoint_dir=ledger.checkpoint_dir
        )
    emit(
        app,
        fmt,
        proof.to_json(),
        lambda: click.echo(
            f"consistent: size {proof.old_size} -> {proof.new.size} "
            f"({len(proof.path)} hash{'' if len(proof.path) == 1 else 'es'} in the proof)"
        ),
    )
    return 0


@audit.command()
@click.argument("environment")
@click.argument("when", nargs=-1, required=True)
@output_option
@click.pass_obj
def at(app: App, environment: str, when: tuple[str, ...], output: str | None) -> None:
    """What ran in ENVIRONMENT at WHEN: releases, weights, artifact and config digests.

    WHEN is ISO-8601, "2026-11-20 14:02", "last tuesday 14:02", or an age like "2h".
    """
    from kiln.services import audit as svc

    fmt = output_format(app, output)
    moment = _when(" ".join(when))
    with _ledger(app) as ledger:
        snap = svc.at(ledger.store, environment, moment)
    data = {
        "environment": snap.environment,
        "at": snap.at.isoformat(),
        "basedOnSeq": snap.last_seq,
        "releases": [
            {"release": r.release, "weight": r.weight, "artifact": r.artifact, "config": r.config}
            for r in snap.releases
        ],
    }

    def human() -> None:
        stamp = snap.at.strftime("%Y-%m-%d %H:%M:%S UTC")
        if not snap.releases:
            click.echo(f"nothing was serving {environment} at {stamp}")
            return
        click.echo(f"{environment} at {stamp} (ledger up to seq {snap.last_seq}):")
        for r in snap.releases:
            click.echo(
                f"  {r.weight:g}%  {r.release}  artifact {r.artifact or '-'}  "
                f"config {r.config or '-'}"
            )

    emit(app, fmt, data, human)


@click.command()
@click.argument("environment")
@output_option
@click.pass_obj
def history(app: App, environment: str, output: str | None) -> None:
    """Deployments of ENVIRONMENT: release, who, when, outcome."""
    from kiln.services import audit as svc

    fmt = output_format(app, output)
    with _ledger(app) as ledger:
        rows = svc.env_history(ledger.store, environment)
    data = {
        "environment": environment,
        "deployments": [
            {
                "deployment": d.deployment,
                "release": d.release,
                "artifact": d.artifact,
                "config": d.config,
                "startedBy": d.started_by,
                "startedAt": d.started_at.isoformat(),
                "finishedAt": d.finished_at.isoformat() if d.finished_at else None,
                "outcome": d.outcome,
                "previousRelease": d.previous_release,
                "seq": d.start_seq,
            }
            for d in rows
        ],
    }

    def human() -> None:
        if not rows:
            click.echo(f"no deployments to {environment} in the ledger")
            return
        for d in rows:
            started = d.started_at.strftime("%Y-%m-%d %H:%M")
            click.echo(
                f"{started}  {d.release or '-':<20} {_short(d.artifact)}  "
                f"by {d.started_by:<12} {d.outcome}"
            )

    emit(app, fmt, data, human)


@click.command()
@click.argument("a")
@click.argument("b")
@output_option
@click.pass_obj
def diff(app: App, a: str, b: str, output: str | None) -> None:
    """Compare two releases or artifacts: digests, config, SBOM dependencies, attestations."""
    from kiln.services import audit as svc

    fmt = output_format(app, output)
    with _ledger(app) as ledger:
        result = svc.release_diff(ledger.store, a, b)
    data = {
        "a": a,
        "b": b,
        "changes": [{"what": c.what, "name": c.name, "a": c.a, "b": c.b} for c in result.changes],
    }

    def human() -> None:
        if not result.changes:
            click.echo(f"{a} and {b} are the same in everything the ledger links")
            return
        for c in result.changes:
            label = c.name if c.what == "dependency" else c.what
            prefix = "dependency " if c.what == "dependency" else ""
            click.echo(f"{prefix}{label}: {c.a or '(none)'} -> {c.b or '(none)'}")

    emit(app, fmt, data, human)


__all__ = ["audit", "diff", "history"]
