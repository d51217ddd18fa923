"""Every relative link in README.md and docs/ points at a file that exists.

Links are Markdown inline links `[text](target)`; absolute URLs (`http:`,
`https:`, `mailto:`) and pure anchors (`#section`) are not checked. A target's
`#anchor` part is dropped and the rest is resolved against the linking file's
directory. Fenced code blocks and inline code are skipped: they show commands,
not links.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md")])
FENCED = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def relative_links(markdown: str) -> list[str]:
    """The relative link targets of a Markdown text, without their anchors."""
    text = INLINE_CODE.sub("", FENCED.sub("", markdown))
    found: list[str] = []
    for match in LINK.finditer(text):
        target = match.group(1)
        if EXTERNAL.match(target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if path:
            found.append(path)
    return found


def broken_links(doc: Path) -> list[str]:
    return [
        target
        for target in relative_links(doc.read_text(encoding="utf-8"))
        if not (doc.parent / target).exists()
    ]


def test_the_parser_finds_relative_links_and_skips_the_rest() -> None:
    text = (
        'See [a](a.md), [b](docs/b.md#part) and [c](../c.md "title").\n'
        "[web](https://example.com) [mail](mailto:x@example.com) [top](#top)\n"
        "`[not](code.md)`\n"
        "```sh\n[nor](fenced.md)\n```\n"
    )
    assert relative_links(text) == ["a.md", "docs/b.md", "../c.md"]


def test_a_missing_target_is_reported(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    (tmp_path / "there.md").write_text("x", encoding="utf-8")
    doc.write_text("[ok](there.md) [gone](missing.md#x)\n", encoding="utf-8")
    assert broken_links(doc) == ["missing.md"]


def test_there_are_docs_with_links() -> None:
    assert sum(len(relative_links(d.read_text(encoding="utf-8"))) for d in DOCS) > 20


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_relative_link_resolves(doc: Path) -> None:
    assert broken_links(doc) == [], f"{doc.relative_to(ROOT)} links to missing files"
