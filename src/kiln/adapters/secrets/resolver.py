"""Resolving secret references at provisioning time.

``store`` bindings read the encrypted store (a pinned version or the latest);
``env`` bindings read the controller's own environment; ``file`` bindings read a
file (trailing newline stripped, as files written by editors and ``echo`` end
with one). Errors name the binding, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import assert_never

from kiln.core.runtime.model import SecretBinding, SecretSource
from kiln.errors import InvalidInput, NotFound
from kiln.ports.secrets import Resolved, SecretStore, SecretValue

MAX_FILE_BYTES = 64 * 1024


class SecretResolver:
    """Implements ``kiln.ports.secrets.SecretResolver``."""

    def __init__(
        self, *, store: SecretStore | None, environ: Mapping[str, str] | None = None
    ) -> None:
        self._store = store
        self._environ = os.environ if environ is None else environ

    def resolve(self, bindings: Sequence[SecretBinding]) -> list[Resolved]:
        return [self._one(binding) for binding in bindings]

    def _one(self, binding: SecretBinding) -> Resolved:
        if binding.source is SecretSource.STORE:
            if self._store is None:
                raise NotFound(f"secret {binding.name}: no secret store is configured")
            value, version = self._store.get(binding.key, binding.version)
            return Resolved(binding, value, version)
        if binding.source is SecretSource.ENV:
            if binding.key not in self._environ:
                raise NotFound(
                    f"secret {binding.name}: variable {binding.key} is not set",
                    hint=f"export {binding.key} in the controller's environment",
                )
            return Resolved(binding, SecretValue(self._environ[binding.key]), None)
        if binding.source is SecretSource.FILE:
            path = Path(binding.key)
            try:
                with path.open("rb") as handle:
                    data = handle.read(MAX_FILE_BYTES + 1)
            except OSError as exc:
                raise NotFound(
                    f"secret {binding.name}: cannot read {path}: {exc.strerror}"
                ) from None
            if len(data) > MAX_FILE_BYTES:
                raise InvalidInput(f"secret {binding.name}: {path} is larger than 64 KiB")
            text = data.decode("utf-8").removesuffix("\n")
            return Resolved(binding, SecretValue(text), None)
        assert_never(binding.source)
