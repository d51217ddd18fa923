"""Secret use cases: store a new version, list names and versions.

Nothing here returns or prints a value: ``set_secret`` answers with the name
and the new version number, ``list_secrets`` with names and versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.errors import InvalidInput
from kiln.ports.secrets import SecretInfo, SecretStore, SecretValue


@dataclass(frozen=True)
class Stored:
    name: str
    version: int


def set_secret(store: SecretStore, name: str, value: SecretValue) -> Stored:
    if not value.reveal():
        raise InvalidInput("the secret value on stdin is empty", hint="pipe the value in")
    return Stored(name, store.put(name, value))


def list_secrets(store: SecretStore) -> list[SecretInfo]:
    return sorted(store.list(), key=lambda info: info.name)
