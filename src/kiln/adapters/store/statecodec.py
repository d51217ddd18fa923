"""How desired state is written as text, shared by every ``DesiredState`` store.

Pure functions, no I/O: the rollout row (the planner's state as canonical
JSON), a release's config document checked against its digest on the way in
and on the way out, and the analysis journal's round bodies. SQLite
(``desired``) and PostgreSQL (``pgdesired``) store the same strings, so a state
written by one reads back identically from the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from kiln.core.canonical import canonical_json
from kiln.core.digest import digest_bytes
from kiln.core.release import Release, ReleaseId
from kiln.core.rollout.planner import Phase, RolloutState
from kiln.errors import IntegrityError


def rollout_text(state: RolloutState) -> str:
    return canonical_json(asdict(state)).decode()


def rollout_of(text: str) -> RolloutState:
    data = json.loads(text)
    data["phase"] = Phase(data["phase"])
    return RolloutState(**data)


def document_text(release: Release, document: Mapping[str, Any]) -> str:
    """The canonical text of a release's config; refused unless it hashes to ``release.config``."""
    body = canonical_json(document)
    if digest_bytes(body) != release.config:
        raise IntegrityError(
            f"release {release.id}: the config document does not match digest {release.config}"
        )
    return body.decode()


def verified_document(release_id: ReleaseId, config: str, text: str) -> dict[str, Any]:
    """A stored config document, refused if it no longer hashes to its digest."""
    if digest_bytes(text.encode()) != config:
        raise IntegrityError(
            f"release {release_id}: its stored config no longer matches {config}",
            hint="the state database was edited; restore it from a backup",
        )
    document: dict[str, Any] = json.loads(text)
    return document


def round_text(body: Mapping[str, Any]) -> str:
    return canonical_json(body).decode()
