"""Audit use cases: verify the ledger, sign checkpoints, export, prove, query.

The store comes in as a ``LedgerStore``/``EventLog``, the ledger key as a
``Signer`` (or just its public key, for verification). Checkpoints are kept in
two places: the store itself, and a directory outside the database
(``.kiln/ledger/checkpoints/``) so that someone who rewrites the database, even
recomputing every hash, is caught by a checkpoint they could not re-sign.

Export format (``docs/ledger.md``, "Exports"): JSON lines. Line 1 is a header
object, then one line per event holding exactly its leaf bytes, then a trailer
``{"checkpoint": "<signed note>"}`` signed over the whole export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kiln.core.ledger import merkle
from kiln.core.ledger.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    open_note,
    sign,
    vkey,
)
from kiln.core.ledger.events import Event, decode
from kiln.core.ledger.history import (
    Change,
    Deployment,
    Profile,
    Snapshot,
    diff,
    history,
    profile,
    running_at,
)
from kiln.core.ledger.kinds import EventKind
from kiln.core.ledger.verify import (
    LogEntry,
    Outcome,
    Tampered,
    Verified,
    verify_log,
    verify_nodes,
)
from kiln.errors import IntegrityError, InvalidInput, NotFound
from kiln.fsio import write_atomic, write_new
from kiln.ports.keys import Signer
from kiln.ports.ledger import EventLog, LedgerStore

EXPORT_FORMAT = "kiln.ledger.export/v1"
LATEST = "latest.note"


# -- checkpoints --------------------------------------------------------------------


def latest_signed(
    store: EventLog, public_key: bytes, *, checkpoint_dir: Path
) -> SignedCheckpoint | None:
    """The largest checkpoint signed so far, from the store or the copy outside it."""
    notes = store.checkpoints()[-1:]
    latest_file = checkpoint_dir / LATEST
    if latest_file.exists():
        notes.append(latest_file.read_bytes())
    best: SignedCheckpoint | None = None
    for note in notes:
        signed = open_note(note, public_key=public_key, origin=store.origin)
        if best is None or signed.size > best.size:
            best = signed
    return best


def sign_head(store: LedgerStore, signer: Signer, *, checkpoint_dir: Path) -> SignedCheckpoint:
    """Sign the store's current head; keep it in the store and in ``checkpoint_dir``.

    Refuses unless the head extends the latest checkpoint signed before (a
    consistency proof, RFC 6962 §2.1.2, from the stored nodes: O(log n)). So a
    rewritten database is never blessed by a fresh signature, even by commands
    that do not run a full verification (export, prove).
    """
    head = store.head()
    previous = latest_signed(store, signer.public_key, checkpoint_dir=checkpoint_dir)
    if previous is not None:
        if previous.size > head.size:
            raise IntegrityError(
                f"refusing to sign: a checkpoint covers {previous.size} events "
                f"but the log holds {head.size}",
                hint="run `kiln audit verify` to find what was deleted",
            )
        try:
            path = merkle.consistency_proof(store, previous.size, head.size)
        except NotFound:
            path = []
        if not merkle.verify_consistency(previous.size, head.size, previous.root, head.root, path):
            raise IntegrityError(
                f"refusing to sign: the log is not an extension of the checkpoint "
                f"signed at size {previous.size} (history was rewritten)",
                hint="run `kiln audit verify` to locate the change",
            )
    signed = sign(head, public_key=signer.public_key, sign_bytes=signer.sign)
    store.add_checkpoint(head.size, signed.note)
    save_checkpoint(signed, checkpoint_dir)
    return signed


def save_checkpoint(signed: SignedCheckpoint, checkpoint_dir: Path) -> None:
    checkpoint_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_new(checkpoint_dir / f"{signed.size:012d}.note", signed.note, mode=0o644)
    write_atomic(checkpoint_dir / LATEST, signed.note, mode=0o644)


def _saved_notes(checkpoint_dir: Path) -> list[tuple[str, bytes]]:
    if not checkpoint_dir.is_dir():
        return []
    return [(str(p), p.read_bytes()) for p in sorted(checkpoint_dir.glob("*.note"))]


@dataclass(frozen=True)
class VerifyResult:
    outcome: Outcome
    origin: str
    checkpoint_sources: int  # how many checkpoint notes were checked (store + files + given)
    signed: SignedCheckpoint | None = None  # the new checkpoint signed after success

    @property
    def ok(self) -> bool:
        return isinstance(self.outcome, Verified)


def verify(
    store: LedgerStore,
    *,
    public_key: bytes,
    checkpoint_dir: Path,
    extra_checkpoints: Sequence[Path] = (),
    signer: Signer | None = None,
    deep: bool = False,
) -> VerifyResult:
    """Verify every stored entry against every checkpoint known; sign a new one on success.

    ``deep`` also checks every stored Merkle node (the material of proofs).

    A checkpoint that fails its signature is an integrity failure on its own:
    kiln never ignores a checkpoint it cannot trust (fail closed).
    """
    origin = store.origin
    notes: list[tuple[str, bytes]] = [("the database", n) for n in store.checkpoints()]
    notes += _saved_notes(checkpoint_dir)
    for path in extra_checkpoints:
        try:
            notes.append((str(path), path.read_bytes()))
        except FileNotFoundError:
            raise NotFound(f"checkpoint file {path} does not exist") from None
    checkpoints: list[Checkpoint] = []
    for where, note in notes:
        try:
            checkpoints.append(open_note(note, public_key=public_key, origin=origin).checkpoint)
        except IntegrityError as exc:
            raise IntegrityError(f"{where}: {exc.message}", hint=exc.hint) from None
    outcome: Outcome = verify_log(store.rows(), checkpoints, head=store.head())
    if deep and isinstance(outcome, Verified):
        hashes = [h for _, _, h in store.rows(0, outcome.size)]
        outcome = verify_nodes(hashes, store.level) or outcome
    signed = None
    if isinstance(outcome, Verified) and signer is not None and outcome.size > 0:
        if signer.public_key != public_key:
            raise IntegrityError("the signer is not the ledger key the log was verified with")
        signed = sign_head(store, signer, checkpoint_dir=checkpoint_dir)
    return VerifyResult(outcome, origin, len(notes), signed)


# -- export ---------------------------------------------------------------------------


def export(
    store: LedgerStore, out: Path, *, signer: Signer, checkpoint_dir: Path
) -> SignedCheckpoint:
    """Write every event and a fresh checkpoint over exactly those events to ``out``."""
    signed = sign_head(store, signer, checkpoint_dir=checkpoint_dir)
    header = {
        "format": EXPORT_FORMAT,
        "origin": signed.origin,
        "size": signed.size,
        "vkey": vkey(signed.origin, signer.public_key),
    }
    tmp = out.with_name(f".{out.name}.partial")
    with tmp.open("wb") as handle:
        handle.write(json.dumps(header, sort_keys=True).encode() + b"\n")
        for entry in store.entries(0, signed.size):
            handle.write(entry.leaf + b"\n")
        trailer = {"checkpoint": signed.note.decode("utf-8")}
        handle.write(json.dumps(trailer, ensure_ascii=False).encode("utf-8") + b"\n")
    data = tmp.read_bytes()
    tmp.unlink()
    write_atomic(out, data, mode=0o644)
    return signed


def _export_lines(path: Path) -> tuple[dict[str, Any], list[bytes], bytes]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"export {path} does not exist") from None
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) < 2:
        raise IntegrityError(f"{path} is not a kiln ledger export (too short)")
    try:
        header = json.loads(lines[0])
        trailer = json.loads(lines[-1])
        note = trailer["checkpoint"].encode("utf-8")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IntegrityError(f"{path} is not a kiln ledger export (header or trailer)") from None
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise IntegrityError(f"{path} is not a {EXPORT_FORMAT} file")
    return header, lines[1:-1], note


def verify_export(
    path: Path, *, public_key: bytes, extra_checkpoints: Sequence[Path] = ()
) -> VerifyResult:
    """Verify an export with nothing but the ledger's public key (and, optionally,
    checkpoints saved earlier, which catch an export of a rewritten history)."""
    header, leaves, note = _export_lines(path)
    origin = str(header.get("origin", ""))
    signed = open_note(note, public_key=public_key, origin=origin)
    earlier: list[Checkpoint] = []
    for extra in extra_checkpoints:
        try:
            opened = open_note(extra.read_bytes(), public_key=public_key, origin=origin)
        except FileNotFoundError:
            raise NotFound(f"checkpoint file {extra} does not exist") from None
        except IntegrityError as exc:
            raise IntegrityError(f"{extra}: {exc.message}", hint=exc.hint) from None
        earlier.append(opened.checkpoint)

    def entries() -> Iterator[LogEntry]:
        for position, leaf in enumerate(leaves):
            yield LogEntry(position, leaf)

    # Entries are numbered by position: a deleted or moved line shows up as a
    # leaf whose own seq disagrees with where it stands.
    outcome = verify_log(entries(), [*earlier, signed.checkpoint])
    if isinstance(outcome, Verified) and outcome.size != signed.size:
        outcome = Tampered(
            signed.size,
            f"the export holds {outcome.size} events but its checkpoint covers {signed.size}: "
            f"seq {signed.size} onwards were added after signing",
        )
    return VerifyResult(outcome, origin, 1 + len(earlier), None)


# -- proofs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    leaf: bytes
    tree_size: int
    root: bytes
    path: list[bytes]
    checkpoint: bytes
    vkey: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "kiln.ledger.inclusion/v1",
            "seq": self.seq,
            "leaf": self.leaf.decode("utf-8"),
            "leafHash": merkle.leaf_hash(self.leaf).hex(),
            "treeSize": self.tree_size,
            "root": self.root.hex(),
            "path": [p.hex() for p in self.path],
            "checkpoint": self.checkpoint.decode("utf-8"),
            "vkey": self.vkey,
        }


def _checkpoint_covering(
    store: LedgerStore, seq: int, public_key: bytes
) -> SignedCheckpoint | None:
    best: SignedCheckpoint | None = None
    for note in store.checkpoints():
        signed = open_note(note, public_key=public_key, origin=store.origin)
        if signed.size > seq and (best is None or signed.size > best.size):
            best = signed
    return best


def prove(store: LedgerStore, seq: int, *, signer: Signer, checkpoint_dir: Path) -> InclusionProof:
    """An inclusion proof of event ``seq`` in the latest signed checkpoint (signing one if
    none covers it yet). The proof is checked before it is returned: a damaged node
    table yields an error, never a wrong proof."""
    size = store.size()
    if not 0 <= seq < size:
        raise NotFound(f"there is no event {seq}; the ledger holds seq 0..{size - 1}")
    signed = _checkpoint_covering(store, seq, signer.public_key)
    if signed is None or signed.size < size:
        signed = sign_head(store, signer, checkpoint_dir=checkpoint_dir)
    (entry,) = list(store.entries(seq, seq + 1))
    path = merkle.inclusion_proof(store, seq, signed.size)
    leaf = merkle.leaf_hash(entry.leaf)
    if not merkle.verify_inclusion(seq, signed.size, leaf, path, signed.root):
        raise IntegrityError(
            f"event {seq} does not prove against the signed checkpoint",
            hint="run `kiln audit verify` to find the damaged entries",
        )
    return InclusionProof(
        seq=seq,
        leaf=entry.leaf,
        tree_size=signed.size,
        root=signed.root,
        path=path,
        checkpoint=signed.note,
        vkey=vkey(signed.origin, signer.public_key),
    )


def verify_proof(document: dict[str, Any], *, public_key: bytes) -> Event:
    """Check an inclusion proof document offline; return the event it proves."""
    try:
        seq = int(document["seq"])
        leaf = str(document["leaf"]).encode("utf-8")
        path = [bytes.fromhex(p) for p in document["path"]]
        note = str(document["checkpoint"]).encode("utf-8")
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("not a kiln inclusion proof document") from None
    signed = open_note(note, public_key=public_key)
    if not merkle.verify_inclusion(seq, signed.size, merkle.leaf_hash(leaf), path, signed.root):
        raise IntegrityError(f"the proof of event {seq} does not match its signed checkpoint")
    event = decode(leaf)
    if event.seq != seq:
        raise IntegrityError(f"the proof is for seq {seq} but its event says seq {event.seq}")
    return event


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    old_root: bytes
    new: SignedCheckpoint
    path: list[bytes]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "kiln.ledger.consistency/v1",
            "oldSize": self.old_size,
            "oldRoot": self.old_root.hex(),
            "newSize": self.new.size,
            "newRoot": self.new.root.hex(),
            "path": [p.hex() for p in self.path],
            "checkpoint": self.new.note.decode("utf-8"),
        }


def prove_consistency(
    store: LedgerStore, old_note: bytes, *, signer: Signer, checkpoint_dir: Path
) -> ConsistencyProof:
    """Prove that the log today extends the one ``old_note`` signed (RFC 6962 §2.1.2)."""
    old = open_note(old_note, public_key=signer.public_key, origin=store.origin)
    new = sign_head(store, signer, checkpoint_dir=checkpoint_dir)
    if old.size > new.size:
        raise IntegrityError(
            f"the old checkpoint covers {old.size} events but the log holds {new.size}"
        )
    path = merkle.consistency_proof(store, old.size, new.size)
    if not merkle.verify_consistency(old.size, new.size, old.root, new.root, path):
        raise IntegrityError(
            f"the log is not an extension of the checkpoint at size {old.size}: "
            "history was rewritten",
            hint="run `kiln audit verify --checkpoint` with that checkpoint to locate it",
        )
    return ConsistencyProof(old.size, old.root, new, path)


# -- queries -----------------------------------------------------------------------------


def log(
    events: EventLog,
    *,
    environment: str | None = None,
    artifact: str | None = None,
    since: datetime | None = None,
    kinds: Sequence[EventKind] | None = None,
) -> list[Event]:
    return events.query(environment=environment, artifact=artifact, since=since, kinds=kinds)


def env_history(events: EventLog, environment: str) -> list[Deployment]:
    return history(events.query(environment=environment))


def at(events: EventLog, environment: str, when: datetime) -> Snapshot:
    return running_at(events.query(environment=environment), environment=environment, at=when)


@dataclass(frozen=True)
class Diff:
    a: Profile
    b: Profile
    changes: list[Change]


def _related(events: EventLog, name: str) -> list[Event]:
    """The events of release or artifact ``name``, and of every artifact the release ran."""
    found = {e.seq: e for e in events.query(release=name)}
    found.update((e.seq, e) for e in events.query(artifact=name))
    for artifact in {e.artifact for e in found.values() if e.artifact and e.release == name}:
        found.update((e.seq, e) for e in events.query(artifact=artifact))
    return [found[seq] for seq in sorted(found)]


def release_diff(events: EventLog, a: str, b: str) -> Diff:
    left, right = profile(_related(events, a), a), profile(_related(events, b), b)
    for side in (left, right):
        if side.events == 0:
            raise NotFound(
                f"the ledger has no release or artifact {side.name!r}",
                hint="use a release id from `kiln history ENV` or an artifact digest",
            )
    return Diff(left, right, diff(left, right))
