"""Whatever bytes arrive, ``load_spec`` ends in a ServiceSpec or a KilnError.

Three generators: arbitrary bytes, YAML documents built from kiln's own key
names (so they get deep into validation), and single-character mutations of the
example spec (the typos people actually make).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from kiln.core.spec.loader import load_spec
from kiln.core.spec.models import ServiceSpec
from kiln.errors import KilnError, SpecError

EXAMPLE = (Path(__file__).resolve().parents[3] / "examples" / "hello" / "kiln.yaml").read_text()

KEYS = [
    "service", "build", "environments", "promotion", "tests", "policies", "settings",
    "name", "replicas", "strategy", "canary", "blueGreen", "steps", "setWeight", "pause",
    "analysis", "duration", "metrics", "health", "path", "timeout", "gates", "config",
    "secrets", "from", "key", "runtime", "provider", "router", "kind", "command", "port",
    "approvals", "required", "approvers", "rules", "expr", "apiVersion", "bake", "x",
]  # fmt: skip
WORDS = ["dev", "prod", "canary", "30s", "5 minutes", "signed", "podman", "kiln.dev/v1", ""]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=25,
)


def _yaml(data: Any) -> str:
    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.dump(data, out)
    return out.getvalue()


def _outcome(data: bytes | str) -> ServiceSpec | KilnError:
    try:
        return load_spec(data, source="fuzz.yaml")
    except KilnError as exc:
        if isinstance(exc, SpecError):
            assert exc.problems, "a SpecError always lists at least one problem"
            for problem in exc.problems:
                assert problem.file == "fuzz.yaml"
                assert problem.message
                assert problem.render()
                # kiln's own words, never pydantic's raw "Input should be ..." text.
                assert "Input should" not in problem.message, problem.render()
        return exc


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_end_in_a_spec_or_a_kiln_error(data: bytes) -> None:
    assert isinstance(_outcome(data), ServiceSpec | KilnError)


@FAST
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}#&*!|>'\"\t\n ,?%@`0.")), max_size=80))
def test_yaml_punctuation_soup_ends_in_a_spec_or_a_kiln_error(text: str) -> None:
    assert isinstance(_outcome(text), ServiceSpec | KilnError)


@FAST
@given(documents)
def test_random_yaml_documents_end_in_a_spec_or_a_kiln_error(data: Any) -> None:
    assert isinstance(_outcome(_yaml(data)), ServiceSpec | KilnError)


@settings(FAST, max_examples=50)
@given(st.dictionaries(st.sampled_from(KEYS), documents, max_size=6))
def test_random_specs_with_a_service_end_in_a_spec_or_a_kiln_error(data: dict[str, Any]) -> None:
    data = {"service": "fuzz", **data}
    assert isinstance(_outcome(_yaml(data)), ServiceSpec | KilnError)


@FAST
@given(
    st.integers(min_value=0, max_value=len(EXAMPLE) - 1),
    st.sampled_from(["delete", "insert", "replace", "duplicate-line"]),
    st.sampled_from(list(":-[]{}# \t\n'\"0aZ&*!")),
)
def test_typos_in_the_example_end_in_a_spec_or_a_kiln_error(at: int, edit: str, char: str) -> None:
    if edit == "delete":
        text = EXAMPLE[:at] + EXAMPLE[at + 1 :]
    elif edit == "insert":
        text = EXAMPLE[:at] + char + EXAMPLE[at:]
    elif edit == "replace":
        text = EXAMPLE[:at] + char + EXAMPLE[at + 1 :]
    else:
        lines = EXAMPLE.splitlines(keepends=True)
        index = at % len(lines)
        text = "".join(lines[: index + 1] + lines[index:])
    assert isinstance(_outcome(text), ServiceSpec | KilnError)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [path] + [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [path] + [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


def _replace(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {k: (_replace(v, rest, value) if k == head else v) for k, v in tree.items()}
    return [(_replace(v, rest, value) if i == head else v) for i, v in enumerate(tree)]


def _everything() -> Any:
    from tests.unit.spec.test_valid_specs import EVERYTHING

    return YAML(typ="safe", pure=True).load(EVERYTHING)


EVERYTHING_TREE = _everything()
EVERYTHING_PATHS = _leaves(EVERYTHING_TREE)


@settings(FAST, max_examples=40)
@given(st.sampled_from(EVERYTHING_PATHS), documents)
def test_any_field_of_a_full_spec_replaced_by_anything_ends_well(
    path: tuple[Any, ...], value: Any
) -> None:
    outcome = _outcome(_yaml(_replace(EVERYTHING_TREE, path, value)))
    if isinstance(outcome, SpecError):
        # Each problem points into the document, at a line of it.
        assert all(p.line is not None for p in outcome.problems)
