"""Failures in the middle of a build or a read: clear errors, nothing partial left."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from kiln.cli.artifacts import _progress
from kiln.cli.context import App
from kiln.core.artifacts.progress import StepAdvanced, StepFinished, StepStarted
from kiln.core.digest import Digest
from kiln.errors import InvalidInput, NotFound
from kiln.services.artifacts import ensure_deployable, resolve_ref
from kiln.services.build import run_build
from kiln.services.spec import read_spec
from tests.integration.artifacts.conftest import BuilderFactory, store_files


def test_a_store_failure_mid_layer_surfaces_and_leaves_no_partial_blob(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "s"
    builder = make_builder(state)
    from kiln.adapters.artifacts import local

    real_write = local._Writer.write
    calls = {"n": 0}

    def failing(self: local._Writer, data: bytes | bytearray | memoryview) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the application layer, after the dependency layer
            raise OSError(28, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(local._Writer, "write", failing)
    with pytest.raises(OSError, match="No space left"):
        run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    files = store_files(state)
    assert not [f for f in files if f.startswith("tmp/")]
    assert len([f for f in files if f.startswith("blobs/")]) == 1  # the complete deps layer


def test_references_resolve_or_say_why_not(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    builder = make_builder(tmp_path / "s")
    result = run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    store = builder.store
    assert resolve_ref(store, result.digest) == result.digest
    assert resolve_ref(store, str(result.tag)) == result.digest
    assert resolve_ref(store, result.digest[7:19]) == result.digest
    assert resolve_ref(store, result.digest[:19]) == result.digest
    with pytest.raises(NotFound):
        resolve_ref(store, "sha256:" + "f" * 64)
    with pytest.raises(InvalidInput, match="neither a digest"):
        resolve_ref(store, "not a ref!")


def test_an_artifact_missing_a_layer_is_not_deployable(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    builder = make_builder(tmp_path / "s")
    result = run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=False, actor="t")
    builder.store.delete_blob(result.layers[-1].digest)
    with pytest.raises(NotFound, match="is incomplete"):
        ensure_deployable(builder.store, Digest(result.digest))


def test_progress_events_drive_a_progress_display() -> None:
    app = App(spec_path="kiln.yaml", flags={})
    sink = io.StringIO()
    app._cache["stderr"] = Console(file=sink, force_terminal=True, width=100)
    with _progress(app, "text") as listen:
        listen(StepStarted("app layer 1/1", total=100))
        listen(StepAdvanced("app layer 1/1", 50))
        listen(StepFinished("app layer 1/1", "100 bytes"))
        listen(StepFinished("dependencies", "unchanged", cached=True))
    shown = sink.getvalue()
    assert "app layer 1/1: 100 bytes" in shown
    assert "dependencies: cached" in shown


def test_progress_is_silent_for_json_output() -> None:
    app = App(spec_path="kiln.yaml", flags={})
    sink = io.StringIO()
    app._cache["stderr"] = Console(file=sink, force_terminal=True)
    with _progress(app, "json") as listen:
        listen(StepStarted("scan"))
        listen(StepFinished("scan", "3 entries"))
    assert sink.getvalue() == ""
