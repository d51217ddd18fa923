"""Attestations in the local state directory, content-addressed and indexed by subject.

Layout under ``<state>/attestations/``::

    blobs/sha256/<hex>                 the envelope bytes, written once, never replaced
    subjects/<subject-hex>/<hex>       an empty marker: envelope <hex> is about this subject

Each marker is its own file, created with ``write_new``, so two writers adding
attestations to one artifact never race on a shared index file, and a crash
leaves either the whole marker or none. Reads return the bytes with the digest
they are filed under and do not check them: verification does, and reports a
mismatch as a reason instead of failing the whole listing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kiln.core.digest import Digest, digest_bytes, hex_of, is_digest
from kiln.errors import IntegrityError
from kiln.fsio import write_new
from kiln.ports.attestations import StoredEnvelope


class FileAttestationStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs" / "sha256"
        self._subjects = root / "subjects"

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> FileAttestationStore:
        return cls(state_dir / "attestations")

    def put(self, envelope: bytes, subjects: Sequence[Digest]) -> Digest:
        digest = digest_bytes(envelope)
        self._blobs.mkdir(parents=True, exist_ok=True, mode=0o700)
        blob = self._blobs / hex_of(digest)
        if not write_new(blob, envelope, mode=0o644) and blob.read_bytes() != envelope:
            raise IntegrityError(
                f"the stored attestation {digest} does not match its digest",
                hint=f"remove {blob}; it was changed on disk",
            )
        for subject in subjects:
            folder = self._subjects / hex_of(subject)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_new(folder / hex_of(digest), b"", mode=0o644)
        return digest

    def for_subject(self, subject: Digest) -> list[StoredEnvelope]:
        folder = self._subjects / hex_of(subject)
        if not folder.is_dir():
            return []
        found: list[StoredEnvelope] = []
        for marker in sorted(folder.iterdir()):
            text = f"sha256:{marker.name}"
            if not is_digest(text):
                continue  # temp files of an interrupted write
            try:
                raw = (self._blobs / marker.name).read_bytes()
            except FileNotFoundError:
                raw = b""  # verification reports it: the bytes do not match the digest
            found.append(StoredEnvelope(Digest(text), raw))
        return found
