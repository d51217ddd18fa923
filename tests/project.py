"""What every story that turns a copy of examples/hello into a kiln project needs:
the trust policy `kiln build --sign` satisfies, git with a fixed identity, the
head of a kiln.yaml with one environment (prod), and the git copy itself."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello"

# The head of the e2e stories' kiln.yaml: hello's build, then prod up to its
# health checks; a story adds the rest of prod's entry (router, analysis, strategy).
HELLO_HEAD = """\
service: hello
build:
  command: ["python", "app.py"]
  port: 8000
  requirements: requirements.txt
environments:
  - name: prod
    replicas: {replicas}
    allowUnsigned: true
    gates: [naming]  # {gates}
    health: {{interval: 50ms, startTimeout: 20s}}
"""

# The builder key `kiln keys` writes signs the provenance and the SBOM.
TRUST = """\
apiVersion: kiln.dev/v1
keys:
  - {id: builder, publicKey: .kiln/keys/default.pub, kinds: [builder]}
require:
  - {predicate: provenance, signedBy: builder}
  - {predicate: sbom, signedBy: builder}
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@kiln.dev", "-c", "user.name=ci", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


def hello_spec(*, replicas: int, gates: str, rest: str) -> str:
    """A kiln.yaml for a copy of examples/hello: prod with ``replicas``, unsigned
    artifacts allowed and the naming gate alone (``gates`` says why, as a YAML
    comment), fast health checks, then ``rest`` (prod's remaining keys, indented)."""
    return HELLO_HEAD.format(replicas=replicas, gates=gates) + rest


def make_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, *, name: str = "kiln.yaml"
) -> Iterator[Path]:
    """A git copy of examples/hello with ``text`` written to ``name`` (its kiln.yaml by
    default), committed, as the working directory; `kiln down` after."""
    work = tmp_path / "hello"
    shutil.copytree(EXAMPLE, work)
    (work / name).write_text(text)
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "v1")
    monkeypatch.chdir(work)
    try:
        yield work
    finally:
        main(["down"])
