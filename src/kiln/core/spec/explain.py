"""pydantic's validation errors, told in kiln's words.

Each error becomes (message, expected, hint): what is wrong, what the field takes,
and what to do, with a "did you mean" for a misspelt key or enum value. The
location is first cleaned of pydantic's internal tags (union members such as
``str``, validator names such as ``function-after[...]``) by walking it against
the document itself: a part that is not in the document is not the user's.

Pure; used by ``loader``.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from kiln.core.spec.models import LocatedValueError, ServiceSpec

Loc = tuple[str | int, ...]


def dotted(loc: Sequence[str | int]) -> str:
    """``environments[0].strategy.canary``: the path users see."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def real_loc(plain: Any, loc: Loc, *, missing: bool) -> tuple[Loc, bool]:
    """The part of ``loc`` that names document nodes, and whether it points at a key.

    A missing field is absent by definition, so its last part is kept.
    """
    node = plain
    out: list[str | int] = []
    on_key = False
    for index, part in enumerate(loc):
        if part == "[key]":
            on_key = True
            continue
        in_map = isinstance(node, Mapping) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_map or in_list:
            out.append(part)
            node = node[part]
        elif missing and index == len(loc) - 1 and isinstance(part, str):
            out.append(part)
    return tuple(out), on_key


# Field-specific words where the generic ones would be vague.
_FORMS = {
    "memory": "a size such as 256m or 1g",
    "listen": "host:port, for example 127.0.0.1:8080",
    "path": "a URL path starting with /",
    "expires": "a date written YYYY-MM-DD",
}
_RANGES = {
    "setWeight": "setWeight is the percentage of traffic sent to the canary, 0 to 100",
    "replicas": "replicas is the number of instances, 0 to 1000",
    "port": "a TCP port, 1 to 65535",
    "previewPort": "a TCP port, 1 to 65535",
}
_NAME_FORM = "lowercase letters, digits and dashes, starting with a letter"
_VARIABLE_FORM = "letters, digits and underscores, not starting with a digit"
_STRATEGY_HINT = "write `strategy: {canary: {}}` or `strategy: {blueGreen: {}}`"
_STEP_HINT = "a step is a mapping: `- setWeight: 20`, `- pause: {}` or `- analysis: {}`"
_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n", "True", "False", "TRUE", "FALSE"}


def explain(
    err: Mapping[str, Any], loc: Loc, cause: object, *, on_key: bool = False
) -> tuple[str, str, str]:
    kind = str(err.get("type", ""))
    value = err.get("input")
    ctx = err.get("ctx") or {}
    field = loc[-1] if loc else ""
    parent = _model_at(loc[:-1])
    if isinstance(cause, LocatedValueError):
        return str(cause), cause.expected, cause.hint
    if on_key:
        return _explain_key(kind, value, str(field))
    if kind == "extra_forbidden":
        return _unknown_key(str(field), parent)
    if kind == "missing":
        return f"`{field}` is required", "", f"add `{field}:` here"
    if kind.endswith(("_type", "_parsing")) or kind in {"model_attributes_type", "dataclass_type"}:
        return _wrong_type(kind, value, loc)
    if kind in {"enum", "literal_error"}:
        expected = str(ctx.get("expected", ""))
        if isinstance(value, dict | list) or value is None:
            return (
                ("the value is empty" if value is None else "wrong type"),
                f"one of {expected}",
                "",
            )
        options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        guess = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
        hint = f"did you mean `{guess[0]}`?" if guess else ""
        return f"unknown value {_show(value)}", f"one of {expected}", hint
    if kind in _BOUNDS:
        symbol, key = _BOUNDS[kind]
        return (
            f"{_show(value)} is out of range",
            f"a value {symbol} {ctx.get(key)}",
            _RANGES.get(str(field), ""),
        )
    if kind == "string_pattern_mismatch":
        return _pattern(value, loc)
    if kind in {"too_short", "string_too_short"}:
        if isinstance(value, str):
            return f"`{field}` is empty", "a non-empty string", ""
        least = ctx.get("min_length", 1)
        noun = "item" if least == 1 else "items"
        return f"`{field}` is empty", f"at least {least} {noun}", ""
    if kind in {"too_long", "string_too_long"}:
        return f"`{field}` is too long", f"at most {ctx.get('max_length')}", ""
    if kind == "value_error":
        text = str(cause) if cause is not None else str(err.get("msg", ""))
        text = text.removeprefix("Value error, ")
        if text.startswith("a duration"):
            return (
                f"invalid duration {_show(value)}",
                text,
                "units: ms, s, m, h, d; combine them as in 1h30m; a bare number is seconds",
            )
        return text, "", ""
    return str(err.get("msg", "invalid value")), "", ""


def _show(value: object) -> str:
    """A value as the user wrote it, cut short: inputs can be whole subtrees."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _explain_key(kind: str, value: object, field: str) -> tuple[str, str, str]:
    if kind == "string_pattern_mismatch":
        return f"invalid variable name {_show(value)}", _VARIABLE_FORM, "for example DATABASE_URL"
    return f"invalid key {field!r}", "a string", ""


def _unknown_key(field: str, parent: type[BaseModel] | None) -> tuple[str, str, str]:
    candidates = _aliases(parent)
    allowed = ", ".join(sorted(candidates))
    camel = to_camel(field)
    if camel != field and camel in candidates:
        return f"unknown key `{field}`", "", f"did you mean `{camel}`? keys are camelCase"
    guess = difflib.get_close_matches(field, candidates, n=1, cutoff=0.6)
    hint = f"did you mean `{guess[0]}`?" if guess else (f"allowed keys here: {allowed}")
    if parent is not None and parent.__name__ == "Strategy":
        return (
            f"unknown strategy `{field}`",
            "blueGreen or canary",
            hint if guess else _STRATEGY_HINT,
        )
    if parent is not None and parent.__name__ == "CanaryStep":
        return f"unknown canary step `{field}`", "setWeight, pause or analysis", hint
    return f"unknown key `{field}`", "", hint


def _wrong_type(kind: str, value: object, loc: Loc) -> tuple[str, str, str]:
    expected = _TYPE_WORDS.get(kind.removesuffix("_parsing").removesuffix("_type"), "")
    hint = ""
    target = _model_at(loc)
    if target is not None:
        expected = "a mapping"
        if target.__name__ == "Strategy":
            hint = _STRATEGY_HINT
        elif target.__name__ == "CanaryStep":
            hint = _STEP_HINT
        elif value is None:
            hint = "write the mapping, or remove the key to take the defaults"
    elif kind.startswith("string") and isinstance(value, bool | int | float):
        hint = "quote the value if you meant the text"
    elif kind.startswith(("int", "float")) and isinstance(value, str):
        hint = "remove the quotes" if _numeric(value) else ""
    elif kind.startswith("int") and isinstance(value, float):
        hint = "a whole number"
    elif kind.startswith("list") and isinstance(value, str):
        hint = "write it as a list: [" + ", ".join(value.split()) + "]"
    elif kind.startswith("bool") and isinstance(value, str) and value in _YAML11_BOOLEANS:
        hint = "YAML 1.2 spells booleans true and false"
    if value is None:
        return "the value is empty", expected, hint
    return "wrong type", expected, hint


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "a boolean (true or false)",
    "dict": "a mapping",
    "model": "a mapping",
    "model_attributes": "a mapping",
    "list": "a list",
    "tuple": "a list",
    "date": "a date",
}


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pattern(value: object, loc: Loc) -> tuple[str, str, str]:
    field = str(loc[-1]) if loc else ""
    container = loc[-2] if len(loc) >= 2 else ""
    is_name = field in {"name", "service"} or container in {
        "promotion",
        "metrics",
        "environments",
    }
    if is_name:
        return f"invalid name {_show(value)}", _NAME_FORM, "for example my-app"
    if field in _FORMS:
        return f"invalid {field} {_show(value)}", _FORMS[field], ""
    return f"{_show(value)} has the wrong form", "a value matching the documented pattern", ""


# --- the model tree, for "did you mean" and per-model wording ---------------------


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model whose mapping sits at ``loc`` in a document, if any."""
    annotation: Any = ServiceSpec
    for part in loc:
        model = _as_model(annotation)
        origin = typing.get_origin(_unwrap(annotation))
        if isinstance(part, int):
            if origin is not list:
                return None
            annotation = typing.get_args(_unwrap(annotation))[0]
        elif model is not None:
            field = _field(model, part)
            if field is None:
                return None
            annotation = field.annotation
        elif origin is dict:
            annotation = typing.get_args(_unwrap(annotation))[1]
        else:
            return None
    return _as_model(annotation)


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional (``X | None``) to the type that matters."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if typing.get_origin(annotation) in {typing.Union, types.UnionType}:
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _as_model(annotation: Any) -> type[BaseModel] | None:
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None


def _field(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return field
    return None


def _aliases(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]
