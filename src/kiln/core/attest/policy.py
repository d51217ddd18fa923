"""The trust policy (``trust.yaml``): which keys kiln trusts, for what, and what it requires.

Example (docs/attestations.md explains every field)::

    apiVersion: kiln.dev/v1
    keys:
      - id: ci
        publicKey: keys/ci.pub        # a path relative to trust.yaml, or
        kinds: [builder]
      - id: qa
        pem: |                        # the PEM text inline
          -----BEGIN PUBLIC KEY-----
          ...
        kinds: [tester, approver]
    require:
      - {predicate: provenance, signedBy: builder}
      - {predicate: sbom, signedBy: builder}
      - {predicate: approval, signedBy: approver, threshold: 2}

Parsing has two stages so this module stays free of I/O. ``parse_trust_file``
validates the YAML and reports every mistake as ``file:line:column`` (a
``SpecError``, like the spec loader). ``resolve_policy`` then turns each key
entry into raw Ed25519 bytes through a ``read`` callable the service passes in;
a key file that is missing or not an Ed25519 key becomes a *problem* carried by
the policy, and a policy with any problem never verifies anything (fail closed:
a half-loaded policy must not silently trust fewer keys than it names).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from kiln.core.attest.predicates import predicate_uri
from kiln.core.keys import key_id
from kiln.errors import InvalidInput, Problem, SpecError

MAX_POLICY_BYTES = 1 << 20

Loc = tuple[str | int, ...]


class KeyKind(StrEnum):
    BUILDER = "builder"
    TESTER = "tester"
    APPROVER = "approver"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class KeyEntry(_Model):
    id: str = Field(..., pattern=r"^[a-z][a-z0-9._-]{0,62}$", description="A name for the key.")
    public_key: str | None = Field(None, alias="publicKey", description="Path of a PEM file.")
    pem: str | None = Field(None, description="The PEM text of an Ed25519 public key.")
    kinds: list[KeyKind] = Field(..., min_length=1, description="What this key may sign.")

    @model_validator(mode="after")
    def _one_source(self) -> KeyEntry:
        if (self.public_key is None) == (self.pem is None):
            raise ValueError("give exactly one of publicKey (a file) or pem (inline text)")
        return self


class RequirementEntry(_Model):
    predicate: str = Field(..., min_length=1, description="A short name or a predicate URI.")
    signed_by: KeyKind = Field(..., alias="signedBy")
    threshold: int = Field(1, ge=1, le=100, description="Distinct trusted keys needed.")
    keys: list[str] = Field(
        default_factory=list, description="Only these key ids count; all of the kind when empty."
    )


class TrustFile(_Model):
    api_version: Literal["kiln.dev/v1"] = Field("kiln.dev/v1", alias="apiVersion")
    keys: list[KeyEntry] = Field(default_factory=list)
    require: list[RequirementEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> TrustFile:
        names = [k.id for k in self.keys]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"key id {dupes[0]!r} is declared twice")
        unknown = sorted({n for r in self.require for n in r.keys if n not in names})
        if unknown:
            raise ValueError(f"require names the unknown key {unknown[0]!r}")
        return self


@dataclass(frozen=True)
class TrustedKey:
    name: str
    key_id: str
    public_key: bytes
    kinds: frozenset[KeyKind]


@dataclass(frozen=True)
class Requirement:
    predicate_type: str
    signed_by: KeyKind
    threshold: int = 1
    keys: frozenset[str] = frozenset()
    environment: str | None = None
    """When set, only statements whose predicate names this environment count (approvals)."""

    def describe(self) -> str:
        from kiln.core.attest.predicates import short_name

        only = f" among {', '.join(sorted(self.keys))}" if self.keys else ""
        if self.environment:
            only += f" for {self.environment}"
        return (
            f"{short_name(self.predicate_type)} signed by {self.threshold} {self.signed_by}{only}"
        )


@dataclass(frozen=True)
class TrustPolicy:
    keys: tuple[TrustedKey, ...]
    requirements: tuple[Requirement, ...]
    problems: tuple[str, ...] = ()
    source: str = "trust.yaml"

    def key_by_id(self, keyid: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.key_id == keyid), None)

    def with_requirements(self, extra: tuple[Requirement, ...]) -> TrustPolicy:
        return TrustPolicy(self.keys, self.requirements + extra, self.problems, self.source)


def parse_public_pem(data: bytes, *, what: str = "public key") -> bytes:
    """Raw 32-byte Ed25519 key from SubjectPublicKeyInfo PEM; ``InvalidInput`` otherwise."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise InvalidInput(f"{what} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{what} is not an Ed25519 public key", hint="kiln signs with Ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class ParsedTrustFile:
    doc: TrustFile
    tree: Any
    source: str

    def line_of(self, loc: Loc) -> str:
        line, column = _position(self.tree, loc)
        return f"{self.source}:{line}:{column}" if line else self.source


def parse_trust_file(data: bytes | str, *, source: str = "trust.yaml") -> ParsedTrustFile:
    """Validate ``trust.yaml``; raise ``SpecError`` listing every problem with its line."""
    text = _decode(data, source)
    if not text.strip():
        return ParsedTrustFile(TrustFile(), None, source)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = str(exc.problem or exc.context or "invalid YAML")
        if "duplicate key" in str(exc):
            message = "a key appears twice in the same mapping"
        raise _policy_error(
            [
                Problem(
                    f"YAML syntax error: {message}",
                    file=source,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            ],
            source=source,
        ) from None
    except (YAMLError, ValueError, RecursionError) as exc:
        raise _policy_error(
            [Problem(f"YAML syntax error: {exc}", file=source)], source=source
        ) from None
    if tree is None:
        return ParsedTrustFile(TrustFile(), None, source)
    if not isinstance(tree, Mapping):
        raise _policy_error(
            [Problem("the document is not a mapping", file=source, line=1, column=1)],
            source=source,
        )
    try:
        doc = TrustFile.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc: Loc = tuple(p for p in err.get("loc", ()) if not _is_tag(p))
            line, column = _position(tree, loc)
            message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            hint = ""
            if err.get("type") == "extra_forbidden":
                message = f"unknown key `{loc[-1]}`"
                guess = difflib.get_close_matches(str(loc[-1]), _KNOWN_KEYS, n=1, cutoff=0.6)
                hint = f"did you mean `{guess[0]}`?" if guess else ""
            problems.append(
                Problem(
                    message, path=_dotted(loc), file=source, line=line, column=column, hint=hint
                )
            )
        raise _policy_error(problems, source=source) from None
    return ParsedTrustFile(doc, tree, source)


def resolve_policy(parsed: ParsedTrustFile, *, read: Callable[[str], bytes]) -> TrustPolicy:
    """Load each key through ``read(path)``; unreadable keys become policy problems."""
    keys: list[TrustedKey] = []
    problems: list[str] = []
    for index, entry in enumerate(parsed.doc.keys):
        where = parsed.line_of(("keys", index, "publicKey" if entry.public_key else "pem"))
        try:
            if entry.public_key is not None:
                pem = _read_key(read, entry.public_key)
                raw = parse_public_pem(pem, what=f"public key file {entry.public_key}")
            else:
                raw = parse_public_pem((entry.pem or "").encode("utf-8"), what="inline pem")
        except InvalidInput as exc:
            problems.append(f"{where}: key {entry.id}: {exc.message}")
            continue
        keys.append(TrustedKey(entry.id, key_id(raw), raw, frozenset(entry.kinds)))
    seen: dict[str, str] = {}
    for key in keys:
        if key.key_id in seen:
            problems.append(
                f"{parsed.source}: keys {seen[key.key_id]} and {key.name} are the same key;"
                " one key must have one entry"
            )
        seen[key.key_id] = key.name
    requirements = tuple(
        Requirement(predicate_uri(r.predicate), r.signed_by, r.threshold, frozenset(r.keys))
        for r in parsed.doc.require
    )
    return TrustPolicy(tuple(keys), requirements, tuple(problems), parsed.source)


def _read_key(read: Callable[[str], bytes], path: str) -> bytes:
    try:
        return read(path)
    except FileNotFoundError:
        raise InvalidInput(f"public key file {path} does not exist") from None
    except OSError as exc:
        raise InvalidInput(f"public key file {path} cannot be read: {exc.strerror}") from None


def _decode(data: bytes | str, source: str) -> str:
    if isinstance(data, str):
        return data
    if len(data) > MAX_POLICY_BYTES:
        raise _policy_error([Problem("the file is larger than 1 MiB", file=source)], source=source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _policy_error(
            [Problem(f"the file is not UTF-8 (bad byte at offset {exc.start})", file=source)],
            source=source,
        ) from None


_KNOWN_KEYS = [
    "apiVersion",
    "keys",
    "require",
    "id",
    "publicKey",
    "pem",
    "kinds",
    "predicate",
    "signedBy",
    "threshold",
]


def _policy_error(problems: list[Problem], *, source: str) -> SpecError:
    error = SpecError(problems, source=source)
    error.hint = "fix every problem listed above, then run `kiln verify` again"
    return error


def _is_tag(part: str | int) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def _position(tree: Any, loc: Loc) -> tuple[int | None, int | None]:
    """1-based line and column of ``loc`` in a ruamel tree, or of its nearest ancestor."""
    lc = getattr(tree, "lc", None)
    best: tuple[int | None, int | None] = (
        (lc.line + 1, lc.col + 1) if lc is not None and lc.line is not None else (None, None)
    )
    node = tree
    for part in loc:
        pos = None
        if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
            pos = node.lc.value(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            pos = node.lc.item(part)
            node = node[part]
        else:
            break
        if pos is not None:
            best = (pos[0] + 1, pos[1] + 1)
    return best
