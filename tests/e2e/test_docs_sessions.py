"""The pages whose shell blocks are marked ```sh session run from top to bottom.

Each page runs as one bash script (`set -euo pipefail`), in one fresh copy of
examples/hello with `kiln` on PATH, its state in the copy's `.kiln/`: exactly
what a reader typing the blocks in order would do, deploys, background
traffic and canaries included (docs/tutorial.md). Whatever happens, the
teardown stops the shell's process group (the page's background traffic) and
runs `kiln down` (controller, routers, instances).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docblocks import DOCS, ROOT, Block, blocks_of

pytestmark = pytest.mark.e2e

MARK = "### docs session block "
SESSIONS = {
    doc: found
    for doc in DOCS
    if (found := [b for b in blocks_of(doc) if b.is_shell and b.mode == "session"])
}


def script(blocks: list[Block]) -> str:
    """One bash script: each block announced on stderr before it runs.

    When the script ends, early or not, its background jobs (a page's traffic)
    are stopped, so they cannot hold the output pipe open.
    """
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2> /dev/null || true' EXIT"]
    for block in blocks:
        parts.append(f"echo '{MARK}{block.where}' >&2")
        parts.append(block.body)
    return "\n".join(parts) + "\n"


def failed_block(output: str) -> str:
    marks = [line for line in output.splitlines() if line.startswith(MARK)]
    return marks[-1].removeprefix(MARK) if marks else "(before the first block)"


def test_the_tutorial_is_a_session() -> None:
    tutorial = SESSIONS.get(ROOT / "docs" / "tutorial.md", [])
    assert len(tutorial) >= 10, "docs/tutorial.md should run as one session"


def test_a_script_names_each_block_before_it_runs() -> None:
    doc = ROOT / "docs" / "x.md"
    text = script([Block(doc, 3, "sh session", "true\n"), Block(doc, 9, "sh session", "false\n")])
    assert text.splitlines()[2] == f"echo '{MARK}docs/x.md:3' >&2"
    result = subprocess.run(["bash", "-c", text], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert failed_block(result.stderr) == "docs/x.md:9"


@pytest.mark.parametrize("doc", list(SESSIONS), ids=[d.name for d in SESSIONS])
def test_a_session_page_runs_in_order(doc: Path, tmp_path: Path) -> None:
    work = tmp_path / "hello"
    shutil.copytree(ROOT / "examples" / "hello", work)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("KILN_STATE_DIR", None)
    started = time.monotonic()
    shell = subprocess.Popen(
        ["bash", "-c", script(SESSIONS[doc])],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = shell.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)
        output, _ = shell.communicate()
        output += "\n(timed out after 240 s)"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # the page's background traffic, if left
        subprocess.run(
            [sys.executable, "-m", "kiln", "down"],
            cwd=work,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
    elapsed = time.monotonic() - started
    print(f"{doc.relative_to(ROOT)}: {len(SESSIONS[doc])} blocks in {elapsed:.1f}s")
    tail = "\n".join(output.splitlines()[-60:])
    assert shell.returncode == 0, f"{failed_block(output)} failed:\n{tail}"
