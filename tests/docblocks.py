"""The fenced blocks of README.md and docs/, and how the docs tests treat them.

Every fenced shell block (```sh, ```bash, ```shell, ```console) is one of:

- ```sh test: run on its own by tests/unit/test_docs_examples.py, in a fresh
  copy of examples/hello with a throwaway KILN_STATE_DIR;
- ```sh session: run by tests/e2e/test_docs_sessions.py, in document order, in
  one bash, in one fresh copy of examples/hello per page (a tutorial);
- a block whose first line says why it cannot run here:
  `# not run by the docs test: REASON` (visible to the reader, too).

tests/unit/test_docs_examples.py enforces that rule, so a new page cannot add a
command that nothing runs without saying so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md")])
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELLS = frozenset({"sh", "bash", "shell", "console", "zsh"})
NOT_RUN = re.compile(r"^#[ \t]*not run by the docs test:[ \t]*\S")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    info: str
    body: str

    @property
    def where(self) -> str:
        try:
            name = self.doc.relative_to(ROOT)
        except ValueError:
            name = self.doc
        return f"{name}:{self.line}"

    @property
    def words(self) -> list[str]:
        return self.info.split()

    @property
    def is_shell(self) -> bool:
        return bool(self.words) and self.words[0] in SHELLS

    @property
    def mode(self) -> str | None:
        """`test`, `session`, `not-run`, or None for a shell block nothing accounts for."""
        if self.words[1:] in (["test"], ["session"]):
            return self.words[1]
        if NOT_RUN.match(self.body.lstrip("\n")):
            return "not-run"
        return None


def blocks_of(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    return [
        Block(
            doc=doc,
            line=text.count("\n", 0, match.start()) + 1,
            info=match.group(1).strip(),
            body=match.group(2),
        )
        for match in FENCE.finditer(text)
    ]


def all_blocks() -> list[Block]:
    return [block for doc in DOCS for block in blocks_of(doc)]
