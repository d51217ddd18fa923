"""The real dependency layer: pip installs the example's pinned lock (wheels, hashes, no .pyc)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from kiln.adapters.artifacts.pip import PipInstaller
from kiln.errors import Permanent
from kiln.services.build import run_build
from kiln.services.spec import read_spec
from tests.integration.artifacts.conftest import (
    FILES,
    BuilderFactory,
    example_repo,
    make_repo,
    store_files,
)


def test_the_example_builds_with_its_pinned_dependencies_reproducibly(
    tmp_path: Path, make_builder: BuilderFactory
) -> None:
    digests = []
    for name in ("one", "two"):
        repo = example_repo(tmp_path / name / "hello")
        builder = make_builder(tmp_path / name / "state", installer=PipInstaller())
        result = run_build(
            builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t"
        )
        digests.append(result.digest)
        deps = result.layers[0]
        assert deps.role == "deps"
        data = builder.store.read_blob(deps.digest, limit=1 << 30)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = tar.getnames()
        assert "deps/packaging/__init__.py" in names
        assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    assert digests[0] == digests[1]


def test_a_lock_that_does_not_resolve_offline_is_a_clear_error_and_leaves_no_blob(
    tmp_path: Path, make_builder: BuilderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    files = dict(FILES)
    files["requirements.txt"] = "kiln-no-such-package==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    repo = make_repo(tmp_path / "repo", files)
    state = tmp_path / "state"
    builder = make_builder(state, installer=PipInstaller())
    with pytest.raises(Permanent) as info:
        run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    assert "requirements.txt do not resolve" in info.value.message
    assert "kiln-no-such-package" in info.value.message
    assert "--hash" in info.value.hint
    assert [f for f in store_files(state) if f.startswith(("blobs/", "tmp/"))] == []


def test_an_unhashed_lock_is_refused(tmp_path: Path, make_builder: BuilderFactory) -> None:
    files = dict(FILES)
    files["requirements.txt"] = "packaging==24.0\n"
    repo = make_repo(tmp_path / "repo", files)
    builder = make_builder(tmp_path / "state", installer=PipInstaller())
    with pytest.raises(Permanent, match="do not resolve"):
        run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
