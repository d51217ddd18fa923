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
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "kiln.yaml",
        **schema,
    }
