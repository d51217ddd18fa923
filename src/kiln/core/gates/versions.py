"""Version orderings the vulnerability gate needs: PEP 440 and SemVer 2.0.0.

PyPI versions are compared with ``packaging.version`` (PEP 440). OSV ranges of
type ``SEMVER`` are ordered by SemVer 2.0.0 precedence (semver.org, section
11): numeric major.minor.patch, then a pre-release sorts before its release,
pre-release identifiers compare numerically when both are numeric, numeric
identifiers sort before alphanumeric ones, and build metadata is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache, total_ordering

from packaging.version import InvalidVersion, Version

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


@total_ordering
@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        mine, theirs = (
            (self.major, self.minor, self.patch),
            (
                other.major,
                other.minor,
                other.patch,
            ),
        )
        if mine != theirs:
            return mine < theirs
        if not self.prerelease or not other.prerelease:
            # A version without pre-release has higher precedence (11.3).
            return bool(self.prerelease) and not other.prerelease
        for a, b in zip(self.prerelease, other.prerelease, strict=False):
            if a == b:
                continue
            if a.isdigit() and b.isdigit():
                return int(a) < int(b)
            if a.isdigit() != b.isdigit():
                return a.isdigit()
            return a < b
        return len(self.prerelease) < len(other.prerelease)


# Parsing is pure and a database repeats the same few thousand versions: caching
# them makes loading and matching a full PyPI export several times faster.
@lru_cache(maxsize=1 << 16)
def parse_semver(text: str) -> SemVer | None:
    match = _SEMVER.match(text.strip())
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    return SemVer(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())


@lru_cache(maxsize=1 << 16)
def parse_pep440(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def normalize_name(name: str) -> str:
    """PEP 503 normalised project name: runs of -, _ and . become one -, lowercase."""
    return re.sub(r"[-_.]+", "-", name).lower()
