"""A throwaway git checkout of examples/hello with a signing key and trust.yaml."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln.cli.main import main
from tests.project import TRUST, git

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "hello"
OSV = ROOT / "tests" / "fixtures" / "osv"


class Project:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def kiln(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--no-color", *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self.kiln(*args, "-o", "json")
        return code, json.loads(out) if out.strip() else None, err

    def edit_spec(self, old: str, new: str) -> None:
        spec = self.root / "kiln.yaml"
        text = spec.read_text()
        assert old in text, old
        spec.write_text(text.replace(old, new, 1))
        git(self.root, "commit", "-qam", "spec change")

    def events(self, kind: str) -> list[dict[str, Any]]:
        code, data, err = self.json("audit", "log")
        assert code == 0, err
        return [e for e in data["events"] if e["kind"] == kind]

    def build(self) -> str:
        code, data, err = self.json("build")
        assert code == 0, err
        digest: str = data["digest"]
        return digest


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Project]:
    work = tmp_path / "hello"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns(".kiln", "__pycache__"))
    (work / "trust.yaml").write_text(TRUST)
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "v1")
    monkeypatch.chdir(work)
    made = Project(work, capsys)
    assert made.kiln("keys", "generate")[0] == 0
    yield made
