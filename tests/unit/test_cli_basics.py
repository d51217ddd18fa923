"""CLI conventions every command follows: exit codes, JSON output, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello" / "kiln.yaml"


def test_validate_of_the_example_exits_0_and_prints_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["-f", str(EXAMPLE), "validate", "--output", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["valid"] is True
    assert [e["name"] for e in out["spec"]["environments"]] == ["dev", "staging", "prod"]


def test_a_missing_spec_is_a_clear_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-f", str(tmp_path / "nope.yaml"), "validate"])
    err = capsys.readouterr().err
    assert code == 1
    assert "does not exist" in err and "kiln init" in err
    assert "Traceback" not in err


def test_an_unknown_command_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["valdate"])
    assert code == 2
    assert "kiln validate" in capsys.readouterr().err


def test_invalid_spec_errors_are_json_with_output_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "kiln.yaml"
    spec.write_text("service: x\nenvironments:\n  - name: dev\n    replicas: -2\n")
    code = main(["-f", str(spec), "validate", "-o", "json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 2
    (problem,) = payload["error"]["problems"]
    assert (problem["line"], problem["column"], problem["path"]) == (
        4,
        15,
        "environments[0].replicas",
    )


def test_help_imports_no_heavy_module() -> None:
    probe = (
        "import sys; from kiln.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "names = ('pydantic', 'rich', 'ruamel', 'cryptography', 'numpy')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('heavy=' + ','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "heavy="
