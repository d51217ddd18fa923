"""Human tags: ``SERVICE:VERSION-gSHORTSHA``, aliases that never move.

The repository part is the service name (``[a-z][a-z0-9-]*``); the tag part
follows the OCI distribution grammar ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``. A
build from a dirty tree (or outside git) gets ``VERSION-dirty.<12 hex of the
manifest digest>-g<short sha>`` so it can never take the tag a clean build of
the same commit will want.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kiln.core.digest import Digest, short
from kiln.errors import InvalidInput

_REPO = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
SHORT_SHA = 7
NO_REVISION = "0" * SHORT_SHA


@dataclass(frozen=True, order=True)
class Tag:
    repository: str
    name: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.name}"


def parse_tag(text: str) -> Tag:
    """Parse ``repo:tag``; raise ``InvalidInput`` naming what is wrong."""
    repo, sep, name = text.rpartition(":")
    if not sep or not repo or not _REPO.match(repo) or not _TAG.match(name):
        raise InvalidInput(
            f"{text!r} is not a tag of the form SERVICE:TAG",
            hint="for example hello:1.2.0-g1a2b3c4 (tag: letters, digits, '.', '_', '-')",
        )
    return Tag(repo, name)


def is_tag(text: str) -> bool:
    try:
        parse_tag(text)
    except InvalidInput:
        return False
    return True


def clean_version(raw: str) -> str:
    """A version usable inside a tag: leading ``v`` dropped, '+' turned into '_'."""
    version = raw[1:] if raw[:1] in {"v", "V"} and raw[1:2].isdigit() else raw
    version = version.replace("+", "_")
    if not _VERSION.match(version):
        raise InvalidInput(
            f"version {raw!r} cannot be used in a tag",
            hint="use letters, digits, '.', '_' and '-' (for example 1.4.0)",
        )
    return version


def build_tag(
    *, service: str, version: str, revision: str | None, dirty: bool, manifest: Digest
) -> Tag:
    """The tag of a fresh build (see the module docstring for the scheme)."""
    sha = (revision or NO_REVISION)[:SHORT_SHA]
    version = clean_version(version)
    if dirty or revision is None:
        version = f"{version}-dirty.{short(manifest)}"
    return parse_tag(f"{service}:{version}-g{sha}")
