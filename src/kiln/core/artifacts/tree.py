"""Digests of whole trees: an unpacked rootfs, or the file list of a layer.

A tree is a sorted list of ``Node``s; its digest is the sha256 of the canonical
JSON of that list. ``diff`` names what differs between two listings, which is
what ``kiln artifacts verify --unpacked`` and ``kiln rebuild --verify`` print.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kiln.core.artifacts.oci import canonical_json
from kiln.core.digest import Digest, digest_bytes


@dataclass(frozen=True, order=True)
class Node:
    path: str
    type: str
    mode: int
    size: int = 0
    content: str = ""  # sha256 digest of a file, or a symlink's target

    def to_json(self) -> list[Any]:
        return [self.path, self.type, self.mode, self.size, self.content]

    @classmethod
    def from_json(cls, row: Sequence[Any]) -> Node:
        path, kind, mode, size, content = row
        return cls(str(path), str(kind), int(mode), int(size), str(content))


def tree_digest(nodes: Iterable[Node]) -> Digest:
    return digest_bytes(canonical_json([n.to_json() for n in sorted(nodes)]))


@dataclass(frozen=True)
class TreeDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, list[str]]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
        }


def diff(expected: Iterable[Node], actual: Iterable[Node]) -> TreeDiff:
    want: Mapping[str, Node] = {n.path: n for n in expected}
    have: Mapping[str, Node] = {n.path: n for n in actual}
    return TreeDiff(
        added=tuple(sorted(set(have) - set(want))),
        removed=tuple(sorted(set(want) - set(have))),
        changed=tuple(sorted(p for p in set(want) & set(have) if want[p] != have[p])),
    )
