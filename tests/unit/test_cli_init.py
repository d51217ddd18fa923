"""``kiln init``: what it detects, that it never overwrites, that its output validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.cli.main import main
from kiln.core.spec.loader import load_spec
from kiln.core.spec.scaffold import Detected, render, service_name
from kiln.errors import Refused
from kiln.services.spec import detect, init

PYPROJECT_SCRIPT = '[project]\nname = "shop"\n[project.scripts]\nshop = "shop.cli:main"\n'


@pytest.mark.parametrize(
    ("files", "requirements", "entry", "note"),
    [
        ({}, None, None, None),
        ({"requirements.txt": ""}, "requirements.txt", None, None),
        ({"requirements.lock": "", "requirements.txt": ""}, "requirements.lock", None, None),
        ({"uv.lock": ""}, None, None, "uv.lock found: export it with `uv export"),
        ({"poetry.lock": ""}, None, None, "poetry.lock found: export it with `poetry export"),
        ({"Pipfile.lock": "", "requirements.txt": ""}, "requirements.txt", None, None),
        ({"app.py": ""}, None, ["python", "app.py"], None),
        ({"main.py": "", "server.py": ""}, None, ["python", "main.py"], None),
        ({"wsgi.py": ""}, None, ["python", "wsgi.py"], None),
        (
            {"manage.py": ""},
            None,
            ["python", "manage.py", "runserver", "127.0.0.1:$PORT", "--noreload"],
            None,
        ),
        (
            {"pyproject.toml": PYPROJECT_SCRIPT},
            None,
            ["python", "-c", "import sys; from shop.cli import main as _f; sys.exit(_f())"],
            None,
        ),
        (
            {"pyproject.toml": '[project.scripts]\nshop = "shop.__main__"\n'},
            None,
            ["python", "-m", "shop.__main__"],
            None,
        ),
        ({"pyproject.toml": "[project]\nname = 'x'\n"}, None, None, None),
        ({"pyproject.toml": "not [toml"}, None, None, None),
        ({"pyproject.toml": PYPROJECT_SCRIPT, "app.py": ""}, None, ["python", "app.py"], None),
    ],
)
def test_detection(
    tmp_path: Path,
    files: dict[str, str],
    requirements: str | None,
    entry: list[str] | None,
    note: str | None,
) -> None:
    app = tmp_path / "My_Shop"
    app.mkdir()
    for name, text in files.items():
        (app / name).write_text(text)
    found = detect(app)
    assert found.directory_name == "My_Shop"
    assert found.requirements == requirements
    assert found.entry_point == entry
    if note is None:
        assert found.lock_note is None
    else:
        assert found.lock_note is not None and found.lock_note.startswith(note)


@pytest.mark.parametrize(
    "found",
    [
        Detected("shop", None, None),
        Detected("shop", "requirements.txt", ["python", "app.py"]),
        Detected("shop", None, None, lock_note="uv.lock found: export it with `uv export`"),
        Detected("9 lives", "requirements.lock", ["python", "-c", 'print("a \\"quoted\\" arg")']),
        Detected("", None, ["python", "manage.py", "runserver", "127.0.0.1:$PORT"]),
    ],
)
def test_every_scaffold_is_a_valid_spec(found: Detected) -> None:
    spec = load_spec(render(found))
    assert spec.service == service_name(found.directory_name)
    assert spec.build.command == (found.entry_point or ["python", "app.py"])
    assert spec.build.requirements == found.requirements
    assert spec.path_order == ["dev", "prod"]


@pytest.mark.parametrize(
    ("directory", "name"),
    [("My_Shop", "my-shop"), ("9 lives", "app-9-lives"), ("---", "app"), ("a" * 80, "a" * 63)],
)
def test_the_service_name_comes_from_the_directory(directory: str, name: str) -> None:
    assert service_name(directory) == name


def test_init_writes_a_commented_spec_and_reports_what_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "requirements.txt").write_text("flask==3.0.0\n")
    (tmp_path / "app.py").write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert capsys.readouterr().out == (
        "wrote kiln.yaml\n"
        "  dependencies: requirements.txt\n"
        "  entry point:  python app.py\n"
        "next: `kiln validate`, then `kiln build`\n"
    )
    text = (tmp_path / "kiln.yaml").read_text()
    assert text.startswith("# kiln.yaml: ")
    assert "requirements: requirements.txt   # pinned dependencies (detected)" in text
    assert main(["validate"]) == 0


def test_init_never_overwrites_an_existing_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kiln.yaml").write_text("service: mine\n")
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 1
    err = capsys.readouterr().err
    assert "kiln.yaml already exists; kiln init never overwrites a spec" in err
    assert (tmp_path / "kiln.yaml").read_text() == "service: mine\n"
    with pytest.raises(Refused):
        init(tmp_path)


def test_init_mentions_a_lock_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "uv.lock").write_text("")
    assert main(["init", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "note: uv.lock found: export it with `uv export" in out
    assert "entry point:  python app.py (a guess)" in out
    text = (tmp_path / "kiln.yaml").read_text()
    assert "# requirements: requirements.txt   # uv.lock found" in text


def test_quiet_init_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "init", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "kiln.yaml").is_file()


def test_init_in_a_missing_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
