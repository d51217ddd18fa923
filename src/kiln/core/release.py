"""Releases: an artifact digest + a resolved config digest + an environment.

A release is never modified; any change to the artifact or to what the
environment declares for it (config values, secret references and versions,
replicas, runtime, health) is a different release with a different id. The id is
derived from those three parts, so asking twice for the same thing names the same
release and retries are idempotent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, NewType

from kiln.core.canonical import canonical_json
from kiln.core.digest import Digest, digest_bytes, short
from kiln.core.spec.models import Environment

ReleaseId = NewType("ReleaseId", str)


def resolved_config(env: Environment) -> dict[str, Any]:
    """What an environment declares for its instances, as plain data.

    Secret *references* (source, key, version) are part of it; values never are.
    Strategy and analysis are left out: they govern how a release is rolled out,
    not what runs, so changing a canary step does not make a new release.
    """
    data = env.model_dump(mode="json", by_alias=True)
    return {
        "environment": env.name,
        "replicas": data["replicas"],
        "config": data["config"],
        "secrets": data["secrets"],
        "runtime": data["runtime"],
        "health": data["health"],
    }


def config_digest(env: Environment) -> Digest:
    return digest_bytes(canonical_json(resolved_config(env)))


@dataclass(frozen=True)
class Release:
    id: ReleaseId
    environment: str
    artifact: Digest
    config: Digest

    @classmethod
    def of(cls, environment: str, artifact: Digest, config: Digest) -> Release:
        material = f"{environment}\n{artifact}\n{config}".encode()
        rid = ReleaseId("rel-" + hashlib.sha256(material).hexdigest()[:16])
        return cls(rid, environment, artifact, config)

    @property
    def label(self) -> str:
        return f"{self.id} ({short(self.artifact)})"
