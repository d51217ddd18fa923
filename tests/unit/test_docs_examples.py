"""Every example in the docs runs, so the docs never rot.

- A fenced ```yaml block whose first key is `service:` is a complete kiln.yaml:
  it must validate.
- A fenced ```sh test block is run with bash in a fresh copy of examples/hello,
  with `kiln` on PATH and a throwaway KILN_STATE_DIR; it must exit 0.
- ```sh session blocks are run in order, one page at a time, by
  tests/e2e/test_docs_sessions.py (the tutorial, with its deploys and canaries).
- Every other shell block must say in its first line why it is not run:
  `# not run by the docs test: REASON`. The rule is checked here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.core.spec.loader import load_spec
from tests.docblocks import Block, all_blocks, blocks_of

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = all_blocks()
SPECS = [
    (b.where, b.body) for b in BLOCKS if b.info == "yaml" and b.body.lstrip().startswith("service:")
]
SCRIPTS = [(b.where, b.body) for b in BLOCKS if b.is_shell and b.mode == "test"]


def test_the_docs_contain_spec_examples() -> None:
    assert SPECS, "no kiln.yaml example found in the docs"


@pytest.mark.parametrize(("where", "body"), SPECS, ids=[w for w, _ in SPECS])
def test_spec_examples_in_the_docs_validate(where: str, body: str) -> None:
    load_spec(body, source=where)


def unaccounted(blocks: list[Block]) -> list[str]:
    """The shell blocks that no test runs and that do not say why."""
    return [b.where for b in blocks if b.is_shell and b.mode is None]


def test_every_shell_block_is_run_or_says_why_not() -> None:
    missing = unaccounted(BLOCKS)
    assert missing == [], (
        "these shell blocks are neither run by a test nor marked: make them ```sh test "
        "(run alone) or ```sh session (run in page order), or start them with "
        "`# not run by the docs test: REASON`:\n  " + "\n  ".join(missing)
    )


def test_the_rule_sees_an_unmarked_block(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text(
        "```sh\nkiln deploy prod\n```\n"
        "```bash\n# not run by the docs test: needs a cluster\nkubectl apply\n```\n"
        "```sh\n# not run by the docs test:\nno reason given\n```\n"
        "```sh test\nkiln validate\n```\n"
        "```sh session\nkiln build\n```\n"
        "```console\n$ kiln status\n```\n"
        "```yaml\nservice: x\n```\n"
        "```\nplain output\n```\n",
        encoding="utf-8",
    )
    found = blocks_of(doc)
    assert [b.mode for b in found if b.is_shell] == [None, "not-run", None, "test", "session", None]
    assert [w.rsplit(":", 1)[1] for w in unaccounted(found)] == ["1", "8", "18"]


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
