"""in-toto Statement v1: what an attestation says, and about which artifacts.

A statement names its subjects by digest (``{"sha256": "<hex>"}``) and carries one
predicate identified by ``predicateType`` (in-toto attestation framework,
``spec/v1/statement.md``). kiln matches subjects by digest only: the ``name`` is
for people and never decides anything, so renaming or re-tagging an image cannot
make an attestation apply to different bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kiln.core.attest.dsse import loads_strict
from kiln.core.digest import Digest, hex_of, is_digest
from kiln.errors import InvalidInput

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


@dataclass(frozen=True)
class Subject:
    name: str
    digest: Mapping[str, str]

    @classmethod
    def of(cls, name: str, digest: Digest) -> Subject:
        return cls(name=name, digest={"sha256": hex_of(digest)})

    def matches(self, digest: Digest) -> bool:
        """True when this subject names ``digest``; names are ignored on purpose."""
        return self.digest.get("sha256", "").lower() == hex_of(digest)

    def sha256(self) -> Digest | None:
        hexpart = self.digest.get("sha256", "").lower()
        text = f"sha256:{hexpart}"
        return Digest(text) if is_digest(text) else None


@dataclass(frozen=True)
class Statement:
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": s.name, "digest": dict(s.digest)} for s in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    def about(self, digest: Digest) -> bool:
        return any(s.matches(digest) for s in self.subjects)

    def subject_digests(self) -> list[Digest]:
        return [d for s in self.subjects if (d := s.sha256()) is not None]


def statement(
    subjects: Sequence[tuple[str, Digest]], predicate_type: str, predicate: Mapping[str, Any]
) -> Statement:
    if not subjects:
        raise InvalidInput("a statement needs at least one subject")
    return Statement(
        subjects=tuple(Subject.of(name, digest) for name, digest in subjects),
        predicate_type=predicate_type,
        predicate=predicate,
    )


def parse_statement(payload: bytes) -> Statement:
    """Parse a DSSE payload as a Statement v1; raise ``InvalidInput`` naming the fault."""
    try:
        doc = loads_strict(payload)
    except ValueError as exc:
        raise InvalidInput(f"the statement is invalid: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("the statement is not a JSON object")
    if doc.get("_type") != STATEMENT_TYPE:
        raise InvalidInput(f"the statement _type is {doc.get('_type')!r}, not {STATEMENT_TYPE}")
    raw_subjects = doc.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise InvalidInput("the statement has no subject list")
    subjects: list[Subject] = []
    for index, item in enumerate(raw_subjects):
        digest = item.get("digest") if isinstance(item, dict) else None
        if not isinstance(digest, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digest.items()
        ):
            raise InvalidInput(f"subject[{index}] has no digest mapping")
        name = item.get("name", "")
        subjects.append(Subject(name=name if isinstance(name, str) else "", digest=digest))
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise InvalidInput("the statement has no predicateType")
    predicate = doc.get("predicate", {})
    if not isinstance(predicate, dict):
        raise InvalidInput("the statement predicate is not a JSON object")
    return Statement(tuple(subjects), predicate_type, predicate)
