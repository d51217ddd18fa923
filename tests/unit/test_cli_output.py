"""Output conventions of the spec commands: text, JSON, -q, -v and colour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.cli.context import App
from kiln.cli.main import main

SPEC = "service: shop\nenvironments:\n  - name: dev\n  - name: prod\n    replicas: 2\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "kiln.yaml").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_validate_prints_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    assert capsys.readouterr() == ("kiln.yaml: valid · service shop · dev → prod\n", "")


def test_quiet_validate_prints_nothing_and_keeps_the_exit_code(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-q", "validate"]) == 0
    assert capsys.readouterr() == ("", "")
    (project / "kiln.yaml").write_text("service: Shop\n")
    assert main(["-q", "validate"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "kiln.yaml:1:10: service: invalid name 'Shop'" in err


def test_quiet_does_not_hide_json_results(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-q", "validate", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True


def test_verbose_validate_shows_each_environment_resolved(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-v", "validate"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  dev: 1 replica(s) on process behind the embedded router · canary 20%, analysis 30s, "
        "50%, analysis 30s, 100% · gates signed, tests",
        "  prod: 2 replica(s) on process behind the embedded router · canary 20%, analysis 30s, "
        "50%, analysis 30s, 100% · gates signed, tests",
    ]


def test_validate_takes_a_path_argument(
    project: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path_factory.mktemp("other") / "svc.yaml"
    other.write_text("service: other\n")
    assert main(["validate", str(other)]) == 0
    assert "service other" in capsys.readouterr().out


def test_validate_json_from_the_environment(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KILN_OUTPUT", "json")
    assert main(["validate"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["file"] == "kiln.yaml"
    assert payload["spec"]["environments"][1]["replicas"] == 2


def test_every_problem_of_an_invalid_spec_is_printed_then_a_summary(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "kiln.yaml").write_text(SPEC + "    replicsa: 3\n  - name: dev\n")
    assert main(["validate"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "kiln.yaml:6:5: environments[1].replicsa: unknown key `replicsa`\n"
        "    hint: did you mean `replicas`?\n"
        "kiln.yaml:7:11: environments[2].name: duplicate environment name 'dev'\n"
        "    hint: environments[0] is already named 'dev'; names must be unique\n"
        "error: 2 problems in kiln.yaml\n"
        "hint: fix every problem listed above, then run `kiln validate` again\n"
    )


def test_a_binary_spec_is_a_clear_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "kiln.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    assert "kiln.yaml: this is a binary file, not YAML" in err
    assert "Traceback" not in err


def test_a_directory_given_as_the_spec_is_a_clear_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "dir.yaml").mkdir()
    assert main(["-f", "dir.yaml", "validate"]) == 2
    assert "'dir.yaml' is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("color", [True, False])
def test_no_color_means_no_escape_codes_at_all(
    color: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a colour terminal: only the App's own setting may turn colour off.
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    console = App(spec_path="kiln.yaml", flags={}, color=color).console()
    with console.capture() as captured:
        console.print("[bold red]alarm[/]")
    assert ("\x1b[" in captured.get()) is color
    assert console.no_color is not color


def test_no_color_flag_and_variable_reach_the_app(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln.cli import main as entry

    seen: list[App] = []
    original = entry.cli.callback
    assert original is not None

    def spy(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)
        import click

        seen.append(click.get_current_context().obj)

    monkeypatch.setattr(entry.cli, "callback", spy)
    monkeypatch.delenv("NO_COLOR", raising=False)
    main(["-q", "config", "-o", "json"])
    main(["--no-color", "-vv", "config", "-o", "json"])
    monkeypatch.setenv("NO_COLOR", "1")
    main(["config", "-o", "json"])
    assert [(a.color, a.verbosity) for a in seen] == [(True, -1), (False, 2), (False, 0)]


def test_a_huge_spec_is_refused_without_reading_it_all(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "kiln.yaml").write_bytes(b"service: shop\n" + b"#" * (8 << 20))
    assert main(["validate"]) == 2
    assert "kiln.yaml: the file is larger than 1 MiB, the limit for a spec" in (
        capsys.readouterr().err
    )


def test_an_unreadable_spec_is_a_clear_error(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Tests may run as root, which reads any file; make the read fail instead.
    def denied(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    assert main(["validate"]) == 2
    assert "kiln.yaml: cannot read the file: Permission denied" in capsys.readouterr().err


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_printed(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    assert "_KILN_COMPLETE" in capsys.readouterr().out
