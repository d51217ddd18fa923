"""Parse ``kiln.yaml`` text into a ``ServiceSpec``, or a ``SpecError`` listing every problem.

The YAML is read with ruamel.yaml's round-trip loader because it keeps the line
and column of every key and item; pydantic's error locations are then mapped back
onto those positions, so each problem is reported as ``file:line:column``, the
field path, what was expected, and a hint (a close match for a misspelt key).

This module does no file I/O: callers pass the text and the name to report.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from kiln.core.spec import models
from kiln.core.spec.models import LocatedValueError, ServiceSpec
from kiln.errors import Problem, SpecError

MAX_SPEC_BYTES = 1 << 20

Loc = tuple[str | int, ...]


def load_spec(data: bytes | str, *, source: str = "kiln.yaml") -> ServiceSpec:
    """Parse and validate; raise ``SpecError`` with every problem found."""
    text = _decode(data, source)
    tree = _parse_yaml(text, source)
    try:
        return ServiceSpec.model_validate(tree)
    except ValidationError as exc:
        problems = [_problem(err, tree, source) for err in exc.errors()]
        problems.sort(key=lambda p: (p.line or 0, p.column or 0, p.path))
        raise SpecError(_dedupe(problems), source=source) from None
    except RecursionError:
        raise SpecError(
            [Problem("the document is nested too deeply", file=source)], source=source
        ) from None


def _decode(data: bytes | str, source: str) -> str:
    if isinstance(data, str):
        text = data
    else:
        if len(data) > MAX_SPEC_BYTES:
            raise SpecError(
                [Problem(f"the file is {len(data)} bytes; a spec is at most 1 MiB", file=source)],
                source=source,
            )
        if b"\x00" in data:
            raise SpecError(
                [
                    Problem(
                        "this is a binary file, not YAML",
                        file=source,
                        hint="point kiln at your kiln.yaml",
                    )
                ],
                source=source,
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                [
                    Problem(
                        f"the file is not UTF-8 (bad byte at offset {exc.start})",
                        file=source,
                        hint="save kiln.yaml as UTF-8",
                    )
                ],
                source=source,
            ) from None
    if not text.strip() or all(
        line.strip().startswith("#") or not line.strip() for line in text.splitlines()
    ):
        raise SpecError(
            [
                Problem(
                    "the file is empty",
                    file=source,
                    line=1,
                    column=1,
                    hint="run `kiln init` to write a commented starting spec",
                )
            ],
            source=source,
        )
    return text


def _parse_yaml(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        message = exc.problem or exc.context or "invalid YAML"
        hint = "YAML is indentation-sensitive; check the lines just above"
        if "duplicate key" in str(message) or "found duplicate key" in str(exc):
            message = "a key appears twice in the same mapping"
            hint = "remove or rename one of the two keys"
        raise SpecError(
            [
                Problem(
                    f"YAML syntax error: {message}",
                    file=source,
                    line=line,
                    column=column,
                    hint=hint,
                )
            ],
            source=source,
        ) from None
    except (YAMLError, ValueError, RecursionError) as exc:
        raise SpecError(
            [Problem(f"YAML syntax error: {exc}", file=source)], source=source
        ) from None
    if not isinstance(tree, Mapping):
        kind = type(tree).__name__ if tree is not None else "nothing"
        raise SpecError(
            [
                Problem(
                    f"the document is a {kind}, not a mapping",
                    file=source,
                    line=1,
                    column=1,
                    expected="a mapping with at least `service:`",
                )
            ],
            source=source,
        )
    return tree


def _problem(err: Mapping[str, Any], tree: Any, source: str) -> Problem:
    loc: Loc = tuple(err.get("loc", ()))
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, LocatedValueError):
        loc = loc + cause.loc
    loc = tuple(part for part in loc if not _is_pydantic_tag(part))
    kind = str(err.get("type", ""))
    line, column = _position(tree, loc, key=kind == "extra_forbidden")
    message, expected, hint = _explain(err, loc, cause)
    return Problem(
        message=message,
        path=_dotted(loc),
        file=source,
        line=line,
        column=column,
        expected=expected,
        hint=hint,
    )


def _is_pydantic_tag(part: str | int) -> bool:
    # Pydantic inserts validator tags such as "function-after[...]" into locations.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _explain(err: Mapping[str, Any], loc: Loc, cause: object) -> tuple[str, str, str]:
    kind = str(err.get("type", ""))
    raw = str(err.get("msg", "invalid value"))
    field = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        candidates = _fields_at(loc[:-1])
        guess = difflib.get_close_matches(str(field), candidates, n=1, cutoff=0.6)
        hint = f"did you mean `{guess[0]}`?" if guess else ""
        if not hint and candidates:
            hint = "allowed keys here: " + ", ".join(sorted(candidates))
        return f"unknown key `{field}`", "", hint
    if kind == "missing":
        return f"`{field}` is required", "", ""
    if kind in {"int_type", "int_parsing"}:
        return "wrong type", "an integer", ""
    if kind in {"float_type", "float_parsing"}:
        return "wrong type", "a number", ""
    if kind in {"string_type"}:
        return "wrong type", "a string", "quote the value if it looks like a number or boolean"
    if kind in {"bool_type", "bool_parsing"}:
        return "wrong type", "true or false", ""
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return "wrong type", "a mapping", ""
    if kind in {"list_type", "tuple_type"}:
        return "wrong type", "a list", ""
    if kind == "literal_error" or kind == "enum":
        expected = str(err.get("ctx", {}).get("expected", ""))
        value = err.get("input")
        options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        guess = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
        hint = f"did you mean `{guess[0]}`?" if guess else ""
        return f"unknown value {value!r}", f"one of {expected}", hint
    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        bound = (err.get("ctx") or {}).get(key)
        return f"value {err.get('input')!r} is out of range", f"a value {symbol} {bound}", ""
    if kind == "string_pattern_mismatch":
        if field in {"name", "service"} or (len(loc) >= 2 and loc[-2] in {"promotion", "metrics"}):
            return (
                f"invalid name {err.get('input')!r}",
                "lowercase letters, digits and dashes, starting with a letter",
                "",
            )
        return f"value {err.get('input')!r} has the wrong form", raw.lower(), ""
    if kind in {"too_short", "too_long"}:
        return raw, "", ""
    if kind == "value_error":
        text = str(cause) if cause is not None else raw.removeprefix("Value error, ")
        if text.startswith("a duration"):
            return f"invalid duration {err.get('input')!r}", text, ""
        return text, "", _value_hint(text)
    return raw, "", ""


_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _value_hint(text: str) -> str:
    if "unknown environment" in text:
        return "promotion lists environment names declared under `environments`"
    if "duplicate" in text:
        return "names must be unique"
    if "exactly one of blueGreen or canary" in text:
        return "write `strategy: {canary: {...}}` or `strategy: {blueGreen: {...}}`"
    return ""


def _fields_at(loc: Loc) -> list[str]:
    """Aliases of the model found at ``loc`` (for 'did you mean' hints)."""
    model: type[BaseModel] | None = ServiceSpec
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = _field_by_alias(model, part)
        if field is None:
            return []
        model = _model_of(field.annotation)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _field_by_alias(model: type[BaseModel], alias: str) -> Any:
    for name, field in model.model_fields.items():
        if (field.alias or name) == alias or name == alias:
            return field
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _position(tree: Any, loc: Loc, *, key: bool) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the node at ``loc``; the nearest ancestor if absent."""
    node = tree
    best: tuple[int | None, int | None] = _node_start(tree)
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
            try:
                pos = node.lc.key(part) if (key and last) else node.lc.value(part)
            except (KeyError, AttributeError, TypeError):
                pos = None
            if pos is not None:
                best = (pos[0] + 1, pos[1] + 1)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            try:
                pos = node.lc.item(part)
            except (KeyError, AttributeError, TypeError):
                pos = None
            if pos is not None:
                best = (pos[0] + 1, pos[1] + 1)
            node = node[part]
        else:
            break
    return best


def _node_start(node: Any) -> tuple[int | None, int | None]:
    lc = getattr(node, "lc", None)
    if lc is None or getattr(lc, "line", None) is None:
        return (1, 1)
    return (lc.line + 1, lc.col + 1)


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str, int | None]] = set()
    out: list[Problem] = []
    for p in problems:
        key = (p.path, p.message, p.line)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


__all__ = ["load_spec", "models"]
