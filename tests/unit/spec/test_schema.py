"""``kiln schema``: a valid draft 2020-12 schema that agrees with the loader."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from kiln.cli.main import main
from kiln.core.spec.schema import SCHEMA_ID, json_schema
from tests.unit.spec.cases import INVALID, Case
from tests.unit.spec.test_valid_specs import EVERYTHING, TEN_LINES

ROOT = Path(__file__).resolve().parents[3]


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json_schema())


def _data(document: bytes) -> Any:
    # JSON Schema sees what an editor sees: YAML 1.2 core types, dates as text.
    yaml = YAML(typ="safe", pure=True)
    yaml.constructor.yaml_constructors["tag:yaml.org,2002:timestamp"] = (
        yaml.constructor.yaml_constructors["tag:yaml.org,2002:str"]
    )
    return yaml.load(document)


def test_the_schema_is_valid_draft_2020_12() -> None:
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"] == "kiln.yaml"


@pytest.mark.parametrize(
    "document",
    [
        pytest.param((ROOT / "examples" / "hello" / "kiln.yaml").read_bytes(), id="example"),
        pytest.param(TEN_LINES, id="ten-lines"),
        pytest.param(EVERYTHING, id="everything"),
        pytest.param(b"service: hello\n", id="minimal"),
    ],
)
def test_the_schema_accepts_valid_specs(document: bytes) -> None:
    errors = list(_validator().iter_errors(_data(document)))
    assert errors == []


SCHEMA_CASES = [c for c in INVALID if c.schema is not None]


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[c.id for c in SCHEMA_CASES])
def test_the_schema_and_the_loader_agree_on_invalid_specs(case: Case) -> None:
    rejected = not _validator().is_valid(_data(case.document))
    # Rules across fields (unique names, references) are beyond JSON Schema; the
    # table says which, so this fails if the schema silently drifts either way.
    assert rejected is case.schema


def test_every_closed_mapping_refuses_unknown_keys() -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node.get("additionalProperties") is False, node.get("title")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json_schema())


def test_every_field_has_a_type_or_a_reference() -> None:
    schema = json_schema()
    for name, definition in schema["$defs"].items():
        for key, prop in definition.get("properties", {}).items():
            assert {"type", "$ref", "anyOf", "enum", "const", "allOf"} & set(prop), (name, key)


def test_kiln_schema_prints_the_schema_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_every_default_in_the_schema_is_valid_under_its_own_schema() -> None:
    schema = json_schema()
    checked = 0

    def walk(node: Any) -> None:
        nonlocal checked
        if isinstance(node, dict):
            if "default" in node:
                sub = {k: v for k, v in node.items() if k != "default"}
                validator = Draft202012Validator({**sub, "$defs": schema["$defs"]})
                assert validator.is_valid(node["default"]), (node.get("title"), node["default"])
                checked += 1
            for key, value in node.items():
                if key != "default":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    assert checked > 50


def test_defaults_made_by_factories_are_in_the_schema() -> None:
    schema = json_schema()
    steps = schema["$defs"]["Canary"]["properties"]["steps"]["default"]
    assert steps[0] == {"setWeight": 20}
    assert schema["$defs"]["Environment"]["properties"]["gates"]["default"] == ["signed", "tests"]
