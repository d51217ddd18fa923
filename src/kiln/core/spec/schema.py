"""The JSON Schema of ``kiln.yaml`` (draft 2020-12), generated from the models.

Editors use it for completion and checks (``# yaml-language-server: $schema=...``,
see docs/spec.md), and ``docs/reference/kiln-yaml.md`` is generated from it by
``kiln.docsgen``. Two touches on top of pydantic's output, both so the schema says
what the loader does: defaults made by factories are filled in, and maps keyed by
a pattern refuse other keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from kiln.core.spec.models import ServiceSpec

SCHEMA_ID = "https://kiln.dev/schema/kiln.v1.json"


def json_schema() -> dict[str, Any]:
    schema = ServiceSpec.model_json_schema(by_alias=True, mode="validation")
    _close_maps(schema)
    _factory_defaults(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "kiln.yaml",  # over pydantic's "ServiceSpec": editors show this name
    }


def _close_maps(node: Any) -> None:
    """Refuse keys outside ``patternProperties``, as the models do.

    pydantic renders ``dict[Annotated[str, pattern], V]`` as patternProperties but
    leaves other keys allowed; the loader refuses them, so the schema must too.
    """
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_maps(value)
    elif isinstance(node, list):
        for item in node:
            _close_maps(item)


def _factory_defaults(schema: dict[str, Any]) -> None:
    """pydantic omits ``default_factory`` defaults; editors and the docs want them."""
    defs = schema.get("$defs", {})
    for model in _models(ServiceSpec, set()):
        target = schema if model is ServiceSpec else defs.get(model.__name__, {})
        properties = target.get("properties", {})
        for name, field in model.model_fields.items():
            prop = properties.get(field.alias or name)
            if prop is None or "default" in prop or field.default_factory is None:
                continue
            value = field.default_factory()  # type: ignore[call-arg]
            # None means "unset" in these defaults; leaving it out keeps them valid
            # (a canary step with `pause: null` beside `setWeight` has two keys).
            prop["default"] = to_jsonable_python(value, by_alias=True, exclude_none=True)


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[type[BaseModel]]:
    if model in seen:
        return
    seen.add(model)
    yield model
    for field in model.model_fields.values():
        for inner in _nested(field.annotation):
            yield from _models(inner, seen)


def _nested(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _nested(arg)
