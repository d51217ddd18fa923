"""The committed reference docs are exactly what ``make docs`` generates."""

from __future__ import annotations

from pathlib import Path

import click

from kiln import docsgen

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"


def test_the_committed_reference_docs_are_up_to_date(tmp_path: Path) -> None:
    assert docsgen.main(["--out", str(tmp_path)]) == 0
    for name in ("kiln-yaml.md", "cli.md"):
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (REFERENCE / name).read_text(encoding="utf-8")
        assert committed == fresh, f"docs/reference/{name} is stale: run `make docs`"
    assert docsgen.main(["--out", str(REFERENCE), "--check"]) == 0


def test_check_reports_stale_files(tmp_path: Path) -> None:
    docsgen.write(tmp_path)
    (tmp_path / "cli.md").write_text("old\n")
    assert docsgen.stale(tmp_path) == ["cli.md"]
    assert docsgen.main(["--out", str(tmp_path), "--check"]) == 1


def test_generation_is_deterministic() -> None:
    assert docsgen.documents() == docsgen.documents()


def test_the_spec_reference_lists_every_field_of_the_schema() -> None:
    from kiln.core.spec.schema import json_schema

    schema = json_schema()
    rows = docsgen.spec_rows(schema)
    paths = {row.path for row in rows}
    for expected in (
        "service",
        "environments[].strategy.canary.steps[].setWeight",
        "environments[].secrets.<NAME>.from",
        "policies.vulnerabilities.ignore[].expires",
        "settings.stateDir",
    ):
        assert expected in paths
    # Every property of every model appears under some path.
    leaves = {row.path.rsplit(".", 1)[-1].removesuffix("[]") for row in rows}
    for definition in schema["$defs"].values():
        assert set(definition.get("properties", {})) <= leaves
    assert all(row.description for row in rows), [r.path for r in rows if not r.description]
    text = docsgen.render_spec_reference(schema)
    assert "| `environments[].health.interval` | duration | `50ms` |" in text
    assert "| `service` | string | required |" in text


def test_the_cli_reference_covers_every_command_and_the_exit_codes() -> None:
    from kiln.cli.main import COMMANDS

    text = docsgen.render_cli_reference()
    for name in COMMANDS:
        assert f"## `kiln {name}`" in text
        assert f"Usage: kiln {name} [OPTIONS]" in text
    assert "| 3 | internal error" in text


def test_nested_groups_are_documented() -> None:
    @click.group()
    def root() -> None:
        """Root."""

    @root.group()
    def keys() -> None:
        """Manage keys."""

    @keys.command()
    @click.option("--name", default="default", show_default=True, help="Key name.")
    def generate(name: str) -> None:
        """Make a key."""

    text = docsgen.render_cli_reference(root)
    assert "## `kiln keys generate`" in text
    assert "Usage: kiln keys generate [OPTIONS]" in text
    assert "--name TEXT  Key name.  [default: default]" in text
