"""Every example in the docs runs, so the docs never rot.

- A fenced ```yaml block whose first key is `service:` is a complete kiln.yaml:
  it must validate.
- A fenced ```sh block whose info string says `test` (```sh test) is run with
  bash in a fresh copy of examples/hello, with `kiln` on PATH; it must exit 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.core.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md")])
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(kind: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            info, body = match.group(1).strip(), match.group(2)
            line = text.count("\n", 0, match.start()) + 1
            name = f"{doc.relative_to(ROOT)}:{line}"
            if kind == "spec" and info == "yaml" and body.lstrip().startswith("service:"):
                found.append((name, body))
            if kind == "sh" and info.split()[:2] == ["sh", "test"]:
                found.append((name, body))
    return found


SPECS = _blocks("spec")
SCRIPTS = _blocks("sh")


def test_the_docs_contain_spec_examples() -> None:
    assert SPECS, "no kiln.yaml example found in the docs"


@pytest.mark.parametrize(("where", "body"), SPECS, ids=[w for w, _ in SPECS])
def test_spec_examples_in_the_docs_validate(where: str, body: str) -> None:
    load_spec(body, source=where)


@pytest.mark.parametrize(("where", "body"), SCRIPTS, ids=[w for w, _ in SCRIPTS])
def test_shell_examples_in_the_docs_run(where: str, body: str, tmp_path: Path) -> None:
    work = tmp_path / "hello"
    shutil.copytree(ROOT / "examples" / "hello", work)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["KILN_STATE_DIR"] = str(tmp_path / "state")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", body],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
