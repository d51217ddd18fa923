"""How the CLI fails: exit codes, crash logs, JSON errors, colour and verbosity flags."""

from __future__ import annotations

import json
import re
import stat
import tempfile
from pathlib import Path

import click
import pytest

from kiln.cli.errors import GlobalFlags, global_flags
from kiln.cli.main import main
from kiln.errors import NotFound

THIS = "tests.unit.test_cli_errors"


@click.command()
def boom() -> None:
    """A command with a bug in it."""
    raise ZeroDivisionError("the bug")


@click.command()
def missing() -> None:
    """A command that fails the expected way."""
    raise NotFound("release r-7 does not exist", hint="list releases with `kiln releases`")


@click.command()
def interrupted() -> None:
    raise KeyboardInterrupt


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with a spec, as the current directory, with the test commands added."""
    (tmp_path / "kiln.yaml").write_text("service: shop\n")
    monkeypatch.chdir(tmp_path)
    from kiln.cli import main as entry

    for name in ("boom", "missing", "interrupted"):
        monkeypatch.setitem(entry.COMMANDS, name, (f"{THIS}:{name}", "test command"))
    return tmp_path


def _crash_logs(directory: Path) -> list[Path]:
    return sorted(directory.glob("crash-*.log"))


def test_an_internal_error_writes_the_traceback_under_kiln_logs_and_exits_3(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["boom"])
    err = capsys.readouterr().err
    assert code == 3
    (log,) = _crash_logs(project / ".kiln" / "logs")
    assert err.splitlines() == [
        "internal error: ZeroDivisionError: the bug",
        f"the traceback is in {log}; please report it with that file",
    ]
    text = log.read_text()
    assert (
        "Traceback (most recent call last)" in text and 'raise ZeroDivisionError("the bug")' in text
    )
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE((project / ".kiln").stat().st_mode) == 0o700
    assert "Traceback" not in err


def test_an_internal_error_honours_state_dir_flag(
    project: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path_factory.mktemp("elsewhere") / "state"
    state.mkdir()
    assert main(["--state-dir", str(state), "boom"]) == 3
    assert len(_crash_logs(state / "logs")) == 1
    assert not (project / ".kiln").exists()
    assert str(state / "logs") in capsys.readouterr().err


def test_outside_a_project_the_crash_log_goes_to_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    from kiln.cli import main as entry

    monkeypatch.setitem(entry.COMMANDS, "boom", (f"{THIS}:boom", "test command"))
    assert main(["boom"]) == 3
    assert not (tmp_path / ".kiln").exists()
    assert len(_crash_logs(tmp_path / "tmp" / "kiln-logs")) == 1
    capsys.readouterr()


def test_an_internal_error_with_kiln_output_json_is_a_json_document(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KILN_OUTPUT", "json")
    assert main(["boom"]) == 3
    payload = json.loads(capsys.readouterr().out)
    assert payload["error"]["kind"] == "internal"
    assert payload["error"]["message"] == "internal error: ZeroDivisionError: the bug"
    assert Path(payload["error"]["log"]).is_file()


def test_vv_also_prints_the_traceback(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-vv", "boom"]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_an_expected_error_prints_message_and_hint_and_exits_1(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["missing"]) == 1
    assert capsys.readouterr().err == (
        "error: release r-7 does not exist\nhint: list releases with `kiln releases`\n"
    )
    assert not (project / ".kiln").exists()


def test_an_expected_error_is_json_with_kiln_output(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KILN_OUTPUT", "json")
    assert main(["missing"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "error": {
            "kind": "NotFound",
            "message": "release r-7 does not exist",
            "hint": "list releases with `kiln releases`",
            "problems": [],
        }
    }


def test_ctrl_c_exits_130(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["interrupted"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--no-such-flag"]) == 2
    assert "No such option '--no-such-flag'" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "Usage: kiln [OPTIONS] COMMAND" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("kiln, version ")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _as_if_on_a_terminal(stream: object = None, color: bool | None = None) -> bool:
    # click keeps colour on a terminal unless told otherwise; capsys is not one.
    return color is False


@pytest.mark.parametrize(
    ("args", "no_color_env", "coloured"),
    [
        (["missing"], False, True),
        (["--no-color", "missing"], False, False),
        (["missing"], True, False),
    ],
)
def test_error_colour_follows_no_color_flag_and_variable(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    no_color_env: bool,
    coloured: bool,
) -> None:
    if not no_color_env:
        monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(click.utils, "should_strip_ansi", _as_if_on_a_terminal)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert bool(_ANSI.search(err)) is coloured
    assert "release r-7 does not exist" in err


@pytest.mark.parametrize(
    ("args", "environ", "expected"),
    [
        ([], {}, GlobalFlags()),
        (["-f", "a.yaml", "validate"], {}, GlobalFlags(spec="a.yaml")),
        (["--spec=a.yaml", "validate", "-v"], {}, GlobalFlags(spec="a.yaml")),
        (["--state-dir", "/s", "-vv", "boom"], {}, GlobalFlags(state_dir="/s", verbosity=2)),
        (["-q", "--no-color", "x"], {}, GlobalFlags(plain=True, verbosity=-1)),
        (["x"], {"NO_COLOR": "1", "KILN_SPEC": "b.yaml"}, GlobalFlags(spec="b.yaml", plain=True)),
        (["x", "-o", "json"], {"KILN_STATE_DIR": "/k"}, GlobalFlags(state_dir="/k", json=True)),
        (["x"], {"KILN_OUTPUT": "json"}, GlobalFlags(json=True)),
        (["-v", "--verbose", "x"], {}, GlobalFlags(verbosity=2)),
    ],
)
def test_global_flags_are_read_from_the_arguments_before_the_command(
    args: list[str], environ: dict[str, str], expected: GlobalFlags
) -> None:
    assert global_flags(args, environ) == expected
