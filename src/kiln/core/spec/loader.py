"""Parse ``kiln.yaml`` text into a ``ServiceSpec``, or a ``SpecError`` listing every problem.

The passes, in order:

1. decode: bytes to text (size limit, binary, UTF-16, non-UTF-8, empty);
2. parse: ruamel.yaml's round-trip loader, because it keeps the line and column
   of every key and item; YAML errors become one positioned problem;
3. plain: the round-trip tree is copied to plain dicts, lists and scalars, with
   limits on depth and alias expansion, and non-string keys reported;
4. cross-check (``crosscheck``): unique names and references, over the raw tree,
   so those are reported together with field errors;
5. fields: pydantic validates the plain tree; each error's location is mapped
   back onto the YAML positions and explained in kiln's words (``explain``).

Passes 1-3 stop at the first fatal problem (there is no document to check);
passes 4 and 5 always both run. This module does no file I/O: callers pass the
bytes and the name to report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from kiln.core.spec import crosscheck, models
from kiln.core.spec.explain import Loc, dotted, explain, real_loc
from kiln.core.spec.models import LocatedValueError, ServiceSpec
from kiln.errors import Problem, SpecError

MAX_SPEC_BYTES = 1 << 20
# kiln.yaml is at most ~8 levels deep; anything far deeper is a mistake or an attack.
MAX_DEPTH = 64
# Aliases let a small file expand exponentially ("billion laughs"); cap the copy.
MAX_NODES = 50_000


def load_spec(data: bytes | str, *, source: str = "kiln.yaml") -> ServiceSpec:
    """Parse and validate; raise ``SpecError`` with every problem found."""
    text = _decode(data, source)
    tree = _parse_yaml(text, source)
    plain, problems = _Plain(tree, source).convert()
    for finding in crosscheck.service_findings(plain):
        line, column = position(tree, finding.loc, key=False)
        problems.append(
            Problem(
                finding.message,
                path=dotted(finding.loc),
                file=source,
                line=line,
                column=column,
                expected=finding.expected,
                hint=finding.hint,
            )
        )
    try:
        # by_name=False: YAML keys are camelCase only, as the schema says; the
        # snake_case names are for Python callers.
        spec = ServiceSpec.model_validate(plain, by_alias=True, by_name=False)
    except ValidationError as exc:
        problems.extend(_field_problems(exc, tree, plain, source))
    except RecursionError:
        problems.append(Problem("the document is nested too deeply", file=source))
    else:
        if not problems:
            return spec
    raise SpecError(_unique(problems), source=source)


# --- 1. decode -----------------------------------------------------------------------


def _fatal(message: str, source: str, **where: Any) -> SpecError:
    return SpecError([Problem(message, file=source, **where)], source=source)


def _decode(data: bytes | str, source: str) -> str:
    # read_spec reads at most MAX_SPEC_BYTES + 1, so the true size is unknown here.
    too_big = "the file is larger than 1 MiB, the limit for a spec"
    if isinstance(data, str):
        if len(data) > MAX_SPEC_BYTES:
            raise _fatal(too_big, source, hint="point kiln at your kiln.yaml")
        text = data
    else:
        if len(data) > MAX_SPEC_BYTES:
            raise _fatal(too_big, source, hint="point kiln at your kiln.yaml")
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise _fatal("the file is UTF-16", source, hint="save kiln.yaml as UTF-8")
        if b"\x00" in data:
            raise _fatal(
                "this is a binary file, not YAML", source, hint="point kiln at your kiln.yaml"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise _fatal(
                f"the file is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                source,
                line=line,
                column=column,
                hint="save kiln.yaml as UTF-8",
            ) from None
    text = text.removeprefix("\ufeff")
    if all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        raise _fatal(
            "the file is empty",
            source,
            line=1,
            column=1,
            expected="a mapping with at least `service:`",
            hint="run `kiln init` to write a commented starting spec",
        )
    return text


# --- 2. parse ------------------------------------------------------------------------

_DUPLICATE = re.compile(r'duplicate key "(.*?)"')


def _parse_yaml(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        with warnings.catch_warnings():
            # ruamel warns (e.g. about a reused anchor) where kiln has nothing to add.
            warnings.simplefilter("ignore")
            tree = yaml.load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, source) from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise _fatal(
            f"the file contains a control character (#x{exc.character:04x})",
            source,
            line=line,
            column=column,
            hint="remove it; YAML allows printable characters, tabs and newlines only",
        ) from None
    except RecursionError:
        raise _fatal("the document is nested too deeply", source) from None
    except Exception as exc:  # the edge of a third-party parser: translate anything
        raise _fatal(f"the YAML parser failed: {exc}", source) from None
    if not isinstance(tree, Mapping):
        raise _fatal(
            f"the document is {_kind(tree)}, not a mapping",
            source,
            line=1,
            column=1,
            expected="a mapping with at least `service:`",
            hint="a spec starts with `service: NAME`; run `kiln init` for an example",
        )
    return tree


def _syntax_error(exc: MarkedYAMLError, source: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    where: dict[str, Any] = {}
    if mark is not None:
        where = {"line": mark.line + 1, "column": mark.column + 1}
    problem = str(exc.problem or exc.context or "invalid YAML")
    duplicate = _DUPLICATE.search(problem)
    if duplicate:
        return _fatal(
            f"duplicate key `{duplicate.group(1)}`",
            source,
            expected="each key once per mapping",
            hint="remove one of the two, or merge what they say",
            **where,
        )
    if "\\t" in problem or "tab" in problem:
        return _fatal(
            "a tab character where YAML expects spaces",
            source,
            hint="indent with spaces only; YAML forbids tabs in indentation",
            **where,
        )
    if "another document" in problem or "single document" in str(exc.context):
        return _fatal(
            "the file holds more than one YAML document",
            source,
            hint="kiln.yaml is a single document; remove the extra `---`",
            **where,
        )
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return _fatal(
        f"YAML syntax error: {problem}{context}",
        source,
        hint="YAML is indentation-sensitive; check this line and the ones just above",
        **where,
    )


def _kind(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


# --- 3. plain ------------------------------------------------------------------------


class _Plain:
    """Copy the round-trip tree into plain Python values, within limits."""

    def __init__(self, tree: Any, source: str) -> None:
        self.tree = tree
        self.source = source
        self.nodes = 0
        self.problems: list[Problem] = []
        self.active: set[int] = set()

    def convert(self) -> tuple[dict[str, Any], list[Problem]]:
        plain = self._value(self.tree, ())
        assert isinstance(plain, dict)  # noqa: S101 - _parse_yaml checked it is a mapping
        return plain, self.problems

    def _value(self, node: Any, loc: Loc) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _fatal(
                f"the document expands to more than {MAX_NODES} values",
                self.source,
                hint="YAML aliases (*name) are copied where used; a spec needs few of them",
            )
        if len(loc) > MAX_DEPTH:
            line, column = position(self.tree, loc, key=False)
            raise _fatal(
                f"the document is nested more than {MAX_DEPTH} levels deep",
                self.source,
                line=line,
                column=column,
            )
        if isinstance(node, Mapping | list):
            if id(node) in self.active:
                line, column = position(self.tree, loc, key=False)
                raise _fatal(
                    "a YAML alias refers to a node that contains it",
                    self.source,
                    line=line,
                    column=column,
                    hint="remove the alias (*name): a spec cannot contain itself",
                )
            self.active.add(id(node))
            try:
                if isinstance(node, Mapping):
                    return self._mapping(node, loc)
                return [self._value(item, (*loc, i)) for i, item in enumerate(node)]
            finally:
                self.active.discard(id(node))
        return self._scalar(node, loc)

    def _mapping(self, node: Mapping[Any, Any], loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(key, str):
                out[str(key)] = self._value(value, (*loc, str(key)))
                continue
            line, column = _key_position(node, key, self.tree, loc)
            self.problems.append(
                Problem(
                    f"the key {key!r} is {_kind(key)}, not a string",
                    path=dotted(loc),
                    file=self.source,
                    line=line,
                    column=column,
                    expected="a name",
                    hint=f'quote it ("{key}") if you meant the text',
                )
            )
        return out

    def _scalar(self, node: Any, loc: Loc) -> Any:
        if isinstance(node, TaggedScalar):
            line, column = position(self.tree, loc, key=False)
            self.problems.append(
                Problem(
                    f"the YAML tag `{node.tag.value}` is not supported",
                    path=dotted(loc),
                    file=self.source,
                    line=line,
                    column=column,
                    hint="remove the tag; kiln.yaml uses plain values only",
                )
            )
            return str(node.value)
        # ruamel wraps scalars in subclasses that carry formatting (HexInt,
        # ScalarFloat, LiteralScalarString, and ScalarBoolean, an int); unwrap them.
        if isinstance(node, bool | ScalarBoolean):
            return bool(node)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, str):
            return str(node)
        if node is None or isinstance(node, dt.date):
            return node
        # Sets, bytes (!!binary) and the like: kept, so pydantic reports a wrong type.
        return node


def _key_position(node: Any, key: Any, tree: Any, loc: Loc) -> tuple[int | None, int | None]:
    try:
        line, column = node.lc.key(key)
    except (AttributeError, KeyError, TypeError):
        return position(tree, loc, key=False)
    return line + 1, column + 1


# --- 5. fields -----------------------------------------------------------------------


def _field_problems(
    exc: ValidationError, tree: Any, plain: Mapping[str, Any], source: str
) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors():
        kind = str(err.get("type", ""))
        cause = (err.get("ctx") or {}).get("error")
        loc, on_key = real_loc(plain, tuple(err.get("loc", ())), missing=kind == "missing")
        if isinstance(cause, LocatedValueError):
            loc = (*loc, *cause.loc)
        message, expected, hint = explain(err, loc, cause, on_key=on_key)
        line, column = position(tree, loc, key=on_key or kind == "extra_forbidden")
        problems.append(
            Problem(
                message=message,
                path=dotted(loc),
                file=source,
                line=line,
                column=column,
                expected=expected,
                hint=hint,
            )
        )
    return _merge_unions(problems)


def _merge_unions(problems: list[Problem]) -> list[Problem]:
    """One problem per field for a value that matched no member of a union type."""
    out: list[Problem] = []
    options: dict[int, list[str]] = {}
    for p in problems:
        twin = next(
            (
                i
                for i, q in enumerate(out)
                if (q.path, q.line, q.column) == (p.path, p.line, p.column)
                and q.message == p.message == "wrong type"
            ),
            None,
        )
        if twin is None:
            options[len(out)] = [p.expected] if p.expected else []
            out.append(p)
        elif p.expected and p.expected not in options[twin]:
            options[twin].append(p.expected)
    for index, words in options.items():
        if len(words) > 1:
            expected = ", ".join(words[:-1]) + " or " + words[-1]
            out[index] = dataclasses.replace(out[index], expected=expected)
    return out


def position(tree: Any, loc: Loc, *, key: bool) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the node at ``loc``; the nearest ancestor if absent."""
    node = tree
    best: tuple[int | None, int | None] = _node_start(tree)
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        pos: Any = None
        if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
            try:
                pos = node.lc.key(part) if (key and last) else node.lc.value(part)
            except (KeyError, AttributeError, TypeError):
                pos = None
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            try:
                pos = node.lc.item(part)
            except (KeyError, AttributeError, TypeError):
                pos = None
            node = node[part]
        else:
            break
        if pos is not None:
            best = (pos[0] + 1, pos[1] + 1)
    return best


def _node_start(node: Any) -> tuple[int | None, int | None]:
    lc = getattr(node, "lc", None)
    if lc is None or getattr(lc, "line", None) is None:
        return (1, 1)
    return (lc.line + 1, lc.col + 1)


def _unique(problems: list[Problem]) -> list[Problem]:
    """Sorted by position; a cross-check repeated by a model validator appears once."""
    seen: set[tuple[str, str]] = set()
    out: list[Problem] = []
    for p in sorted(problems, key=lambda p: (p.line or 0, p.column or 0, p.path)):
        key = (p.path, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


__all__ = ["MAX_SPEC_BYTES", "load_spec", "models", "position"]
