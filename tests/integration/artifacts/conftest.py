"""Fixtures of the artifact integration tests: git repositories and builders on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from kiln.adapters.artifacts.git import GitRepo
from kiln.adapters.artifacts.local import LocalStore
from kiln.services.build import Builder
from tests.unit.artifacts.fakes import FakeInstaller, FakeRecorder, FrozenClock

SPEC = """\
service: hello
build:
  command: ["python", "app.py"]
  port: 8000
  requirements: requirements.txt
"""
FILES = {
    "kiln.yaml": SPEC,
    "requirements.txt": "fakepkg==1.0 --hash=sha256:" + "0" * 64 + "\n",
    "app.py": "print('hello')\n",
    "pkg/__init__.py": "",
    "pkg/util.py": "X = 1\n",
    "bin/run.sh": "#!/bin/sh\nexec python app.py\n",
    ".gitignore": ".kiln/\n",
}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "kiln",
    "GIT_AUTHOR_EMAIL": "kiln@example.invalid",
    "GIT_COMMITTER_NAME": "kiln",
    "GIT_COMMITTER_EMAIL": "kiln@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}


def git(directory: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=directory,
        env={**os.environ, **GIT_ENV, **(env or {})},
        capture_output=True,
        check=True,
        text=True,
    )
    return done.stdout.strip()


def make_repo(
    directory: Path,
    files: Mapping[str, str | bytes] | None = None,
    *,
    executable: tuple[str, ...] = ("bin/run.sh",),
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or FILES).items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    for rel in executable:
        if (directory / rel).exists():
            (directory / rel).chmod(0o755)
    git(directory, "init", "-q", "-b", "main")
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "-m", "init")
    return directory


EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "hello"


def example_repo(directory: Path) -> Path:
    """A git repository holding a copy of ``examples/hello`` (the example service)."""
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns(".kiln", "__pycache__"))
    (directory / ".gitignore").write_text(".kiln/\n")
    git(directory, "init", "-q", "-b", "main")
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "-m", "example")
    return directory


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


BuilderFactory = Callable[..., Builder]


@pytest.fixture
def make_builder() -> BuilderFactory:
    def factory(
        state: Path,
        *,
        installer: object | None = None,
        recorder: FakeRecorder | None = None,
        environ: Mapping[str, str] | None = None,
        **options: object,
    ) -> Builder:
        return Builder(
            store=LocalStore(state / "store"),
            source=GitRepo(),
            installer=installer or FakeInstaller(),  # type: ignore[arg-type]
            recorder=recorder or FakeRecorder(),
            clock=FrozenClock(),
            cache_dir=state / "cache",
            environ=dict(environ or {}),
            **options,  # type: ignore[arg-type]
        )

    return factory


def age_files(directory: Path, seconds: float = 60.0) -> None:
    """Move every mtime into the past so the build cache trusts the files (not racy)."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = Path(root, name)
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def store_files(state: Path) -> list[str]:
    """Every file under the store except the derived index (for no-partial-blob checks)."""
    root = state / "store"
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "index.json"
    )


def which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run installs it")
    return path
