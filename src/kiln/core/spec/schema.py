"""The JSON Schema of ``kiln.yaml`` (draft 2020-12), generated from the models.

Editors use it for completion (``# yaml-language-server: $schema=...``), and
``docs/reference/kiln-yaml.md`` is generated from it.
"""

from __future__ import annotations

from typing import Any

from kiln.core.spec.models import ServiceSpec

SCHEMA_ID = "https://kiln.dev/schema/kiln.v1.json"


def json_schema() -> dict[str, Any]:
    schema = ServiceSpec.model_json_schema(by_alias=True, mode="validation")
    _close_maps(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "kiln.yaml",
        **schema,
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
