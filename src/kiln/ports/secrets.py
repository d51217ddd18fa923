"""Secret ports: a versioned store, and the resolver providers call at provisioning.

``SecretStore`` keeps numbered versions per name (``put`` never overwrites a
version). ``SecretResolver`` turns ``SecretBinding`` references (store, env or
file) into values at the moment an instance is provisioned; the values go into
the instance's environment and nowhere else. Callers record only names and
versions. ``SecretValue`` hides itself from ``repr``/``str`` so a value that
ends up in a log line or a traceback prints as ``***``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kiln.core.runtime.model import SecretBinding


class SecretValue:
    """A secret's bytes; printing it shows ``***``. ``reveal()`` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a stored secret: its name and versions, no value."""

    name: str
    versions: tuple[int, ...]
    updated: str

    @property
    def latest(self) -> int:
        return self.versions[-1]


@dataclass(frozen=True)
class Resolved:
    """A binding with its value; ``version`` is the store version (None for env/file)."""

    binding: SecretBinding
    value: SecretValue
    version: int | None


class SecretStore(Protocol):
    def put(self, name: str, value: SecretValue) -> int:
        """Store a new version of ``name``; return its number (1, 2, ...)."""
        ...

    def get(self, name: str, version: int | None = None) -> tuple[SecretValue, int]:
        """The value of ``version`` (latest when None) and that version's number."""
        ...

    def list(self) -> list[SecretInfo]: ...


class SecretResolver(Protocol):
    def resolve(self, bindings: Sequence[SecretBinding]) -> list[Resolved]:
        """Every binding's value, or ``NotFound`` naming the first missing one (no value)."""
        ...
