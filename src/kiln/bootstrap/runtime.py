"""Building runtime providers and the secret store from a state directory."""

from __future__ import annotations

import os
from pathlib import Path

from kiln.adapters.runtime.podman import PodmanProvider
from kiln.adapters.runtime.process import ProcessProvider
from kiln.adapters.secrets.filestore import FileSecretStore
from kiln.adapters.secrets.resolver import SecretResolver
from kiln.errors import ConfigError
from kiln.ports.runtime import Provider


def secret_store(state_dir: Path) -> FileSecretStore:
    return FileSecretStore.in_state_dir(state_dir)


def provider(kind: str, state_dir: Path) -> Provider:
    resolver = SecretResolver(store=secret_store(state_dir), environ=os.environ)
    if kind == "process":
        return ProcessProvider(state_dir, resolver=resolver)
    if kind == "podman":
        return PodmanProvider(state_dir, resolver=resolver)
    raise ConfigError(f"unknown runtime provider {kind!r}", hint="use process or podman")
