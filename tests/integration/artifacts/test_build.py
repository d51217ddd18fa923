"""Building images from real git repositories: determinism, caching, dirty trees, bad input."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from kiln.core.artifacts.progress import Event, StepFinished
from kiln.core.ledger.kinds import EventKind
from kiln.errors import InvalidInput, NotFound, Permanent, Refused
from kiln.services.artifacts import load_config, load_manifest
from kiln.services.build import Builder, BuildResult, run_build
from kiln.services.spec import read_spec
from tests.integration.artifacts.conftest import (
    FILES,
    BuilderFactory,
    age_files,
    git,
    make_repo,
    store_files,
)
from tests.unit.artifacts.fakes import FakeInstaller, FakeRecorder


def build(builder: Builder, repo: Path, *, allow_dirty: bool = False) -> BuildResult:
    return run_build(
        builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=allow_dirty, actor="tester"
    )


def layer_members(builder: Builder, digest: str) -> list[tarfile.TarInfo]:
    data = builder.store.read_blob(digest, limit=1 << 30)  # type: ignore[arg-type]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_the_image_has_the_documented_layout(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    recorder = FakeRecorder()
    builder = make_builder(tmp_path / "state", recorder=recorder)
    result = build(builder, repo)
    revision = git(repo, "rev-parse", "HEAD")
    assert str(result.tag) == f"hello:0.0.0-g{revision[:7]}"
    manifest = load_manifest(builder.store, result.digest)
    config = load_config(builder.store, manifest)
    assert config["config"]["WorkingDir"] == "/app"
    assert config["config"]["Cmd"] == ["python", "app.py"]
    assert config["config"]["ExposedPorts"] == {"8000/tcp": {}}
    assert "PYTHONPATH=/deps" in config["config"]["Env"]
    labels = config["config"]["Labels"]
    assert labels["dev.kiln.service"] == "hello"
    assert labels["dev.kiln.revision"] == revision
    assert labels["dev.kiln.dirty"] == "false"
    assert manifest.annotations["org.opencontainers.image.revision"] == revision
    assert manifest.annotations["org.opencontainers.image.created"] == "2024-01-01T00:00:00Z"
    assert manifest.annotations["org.opencontainers.image.title"] == "hello"
    assert [layer.annotations["dev.kiln.layer"] for layer in manifest.layers] == ["deps", "app"]
    deps = [m.name for m in layer_members(builder, manifest.layers[0].digest)]
    assert (
        deps
        == [
            "deps",
            "deps/fakepkg",
            "deps/fakepkg/__init__.py",
            "deps/fakepkg-1.0.dist-info",
            "deps/fakepkg-1.0.dist-info/METADATA",
        ]
        or sorted(deps) == deps
    )
    app = layer_members(builder, manifest.layers[1].digest)
    assert [m.name for m in app] == sorted(m.name for m in app)
    assert {m.name: oct(m.mode) for m in app}["app/bin/run.sh"] == "0o755"
    assert {m.name: oct(m.mode) for m in app}["app/app.py"] == "0o644"
    assert {(m.uid, m.gid, m.mtime) for m in app} == {(0, 0, 1704067200)}
    assert [e["kind"] for e in recorder.events] == [EventKind.BUILD]
    assert recorder.events[0]["artifact"] == result.digest


def _copy_with(src: Path, dest: Path, *, umask: int, mtime_shift: float) -> Path:
    old = os.umask(umask)
    try:
        shutil.copytree(src, dest, symlinks=True, copy_function=shutil.copy)
        for root, _dirs, files in os.walk(dest):
            for name in files:
                path = Path(root, name)
                mode = path.stat().st_mode
                path.chmod((mode | 0o666) & ~umask if not mode & 0o100 else (mode | 0o777) & ~umask)
    finally:
        os.umask(old)
    age_files(dest, mtime_shift)
    return dest


def test_same_inputs_give_the_same_digest_across_dirs_umasks_tz_and_clocks(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build(make_builder(tmp_path / "s1"), repo)
    other = _copy_with(repo, tmp_path / "elsewhere" / "checkout", umask=0o077, mtime_shift=86400)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        builder = make_builder(tmp_path / "s2")
        builder.clock.advance(10_000_000)  # type: ignore[attr-defined]
        second = build(builder, other)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert second.digest == first.digest
    assert [layer.digest for layer in second.layers] == [layer.digest for layer in first.layers]


def test_source_date_epoch_fixes_every_mtime(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "remote", "remove", "origin")  # the remote URL is recorded; keep it equal
    (clone / "app.py").touch()
    env = {"SOURCE_DATE_EPOCH": "1600000000"}
    first = make_builder(tmp_path / "s1", environ=env)
    one = build(first, repo)
    two = build(make_builder(tmp_path / "s2", environ=env), clone)
    assert one.digest == two.digest
    assert one.inputs.epoch == one.inputs.deps_epoch == 1600000000
    for layer in one.layers:
        assert {m.mtime for m in layer_members(first, layer.digest)} == {1600000000}
    later = build(make_builder(tmp_path / "s3", environ={"SOURCE_DATE_EPOCH": "1600000001"}), repo)
    assert later.digest != one.digest


def test_a_bad_source_date_epoch_is_invalid_input(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    with pytest.raises(InvalidInput, match="SOURCE_DATE_EPOCH"):
        build(make_builder(tmp_path / "s", environ={"SOURCE_DATE_EPOCH": "yesterday"}), repo)


def test_an_unchanged_tree_reuses_every_layer_without_installing(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    age_files(repo)
    installer = FakeInstaller()
    events: list[Event] = []
    builder = make_builder(tmp_path / "s", installer=installer, on_event=events.append)
    first = build(builder, repo)
    second = build(builder, repo)
    assert second.digest == first.digest
    assert [layer.cached for layer in second.layers] == [True, True]
    assert installer.installs == 1
    assert any(isinstance(e, StepFinished) and e.cached for e in events)


def test_changing_one_app_file_rebuilds_only_its_layer(
    tmp_path: Path, make_builder: BuilderFactory
) -> None:
    files: dict[str, str | bytes] = dict(FILES)
    files.update({f"data/f{i:04d}.txt": f"file {i}\n" for i in range(600)})
    repo = make_repo(tmp_path / "repo", files)
    age_files(repo)
    builder = make_builder(tmp_path / "s", files_per_layer=32)
    first = build(builder, repo)
    app_layers = [layer for layer in first.layers if layer.role == "app"]
    assert len(app_layers) > 5
    changed = repo / "data" / "f0300.txt"
    changed.write_text("changed\n")
    os.utime(changed, (time.time() - 5, time.time() - 5))
    second = build(builder, repo, allow_dirty=True)
    rebuilt = [layer for layer in second.layers if not layer.cached]
    assert len(rebuilt) == 1 and rebuilt[0].role == "app"
    assert second.digest != first.digest


def test_a_dirty_tree_is_refused_unless_allowed_and_then_recorded(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    (repo / "app.py").write_text("print('changed')\n")
    (repo / "new.py").write_text("")
    builder = make_builder(tmp_path / "s")
    with pytest.raises(Refused, match=r"uncommitted changes: app\.py, new\.py") as info:
        build(builder, repo)
    assert "--allow-dirty" in info.value.hint
    result = build(builder, repo, allow_dirty=True)
    assert result.inputs.dirty
    assert str(result.tag).startswith("hello:0.0.0-dirty.")
    labels = load_config(builder.store, load_manifest(builder.store, result.digest))["config"][
        "Labels"
    ]
    assert labels["dev.kiln.dirty"] == "true"


def test_an_ignored_file_in_the_layer_makes_the_tree_dirty(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    (repo / ".gitignore").write_text(".kiln/\n*.env\n")
    git(repo, "commit", "-qam", "ignore env files")
    (repo / "local.env").write_text("TOKEN=not-for-images\n")
    with pytest.raises(Refused, match=r"local\.env"):
        build(make_builder(tmp_path / "s"), repo)


def test_outside_git_the_build_needs_allow_dirty(
    tmp_path: Path, make_builder: BuilderFactory
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for rel, text in FILES.items():
        (plain / rel).parent.mkdir(parents=True, exist_ok=True)
        (plain / rel).write_text(str(text))
    with pytest.raises(Refused, match=r"not in a git work tree"):
        build(make_builder(tmp_path / "s"), plain)
    result = build(make_builder(tmp_path / "s"), plain, allow_dirty=True)
    assert str(result.tag).endswith("-g0000000")


# --- bad input: a clear error and nothing left in the store --------------------------------


def _refused_cleanly(
    builder: Builder, repo: Path, state: Path, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build(builder, repo, allow_dirty=True)
    assert [f for f in store_files(state) if f.startswith("blobs/") or f.startswith("tmp/")] == []


def test_a_symlink_leaving_the_context_is_refused(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    (repo / "escape").symlink_to("../../etc/passwd")
    state = tmp_path / "s"
    _refused_cleanly(make_builder(state), repo, state, InvalidInput, "leaves the build context")


def test_an_absolute_symlink_is_refused(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    (repo / "abs").symlink_to("/etc/passwd")
    state = tmp_path / "s"
    _refused_cleanly(make_builder(state), repo, state, InvalidInput, "absolute path")


def test_a_symlink_inside_the_context_is_kept_as_a_link(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    (repo / "pkg" / "alias.py").symlink_to("util.py")
    builder = make_builder(tmp_path / "s")
    result = build(builder, repo, allow_dirty=True)
    members = {m.name: m for m in layer_members(builder, result.layers[-1].digest)}
    assert members["app/pkg/alias.py"].issym() and members["app/pkg/alias.py"].linkname == "util.py"


def test_a_non_utf8_name_is_refused(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    fd = os.open(os.fsencode(repo) + b"/caf\xe9.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    state = tmp_path / "s"
    _refused_cleanly(make_builder(state), repo, state, InvalidInput, "not valid UTF-8")


def test_an_enormous_file_is_refused_before_it_is_read(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    with open(repo / "huge.bin", "wb") as handle:
        handle.truncate(5 << 30)  # sparse: costs no disk
    state = tmp_path / "s"
    _refused_cleanly(
        make_builder(state), repo, state, InvalidInput, "over the 4294967296-byte limit"
    )


def test_a_fifo_is_refused(repo: Path, tmp_path: Path, make_builder: BuilderFactory) -> None:
    os.mkfifo(repo / "pipe")
    state = tmp_path / "s"
    _refused_cleanly(make_builder(state), repo, state, InvalidInput, "not a regular file")


def test_an_unreadable_file_is_a_clear_error_and_leaves_no_blob(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests run as root, who can read anything: simulate the kernel's answer.
    real_open = os.open

    def deny(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if str(path).endswith("util.py"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("kiln.services.sourcetree.os.open", deny)
    state = tmp_path / "s"
    builder = make_builder(state, installer=FakeInstaller())
    with pytest.raises(InvalidInput, match=r"cannot read .*util\.py: permission denied"):
        build(builder, repo)
    blobs = [f for f in store_files(state) if f.startswith(("blobs/", "tmp/"))]
    # the dependency layer was complete and stays (content-addressed, gc reclaims it);
    # nothing partial remains
    assert all(not f.startswith("tmp/") for f in blobs)
    assert len(blobs) == 1


def test_a_missing_requirements_file_is_not_found(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    (repo / "requirements.txt").unlink()
    git(repo, "commit", "-qam", "drop lock")
    with pytest.raises(NotFound, match=r"requirements\.txt does not exist"):
        build(make_builder(tmp_path / "s"), repo)


def test_a_failing_install_leaves_no_blob(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    class Broken(FakeInstaller):
        def install(self, requirements: Path, target: Path) -> None:
            (target / "half.py").write_text("x")
            raise Permanent("the pinned requirements in requirements.txt do not resolve")

    state = tmp_path / "s"
    _refused_cleanly(
        make_builder(state, installer=Broken()), repo, state, Permanent, "do not resolve"
    )
    assert not list((state / "cache" / "tmp").iterdir())


def test_build_result_json_lists_layers(
    repo: Path, tmp_path: Path, make_builder: BuilderFactory
) -> None:
    data = build(make_builder(tmp_path / "s"), repo).to_json()
    assert json.loads(json.dumps(data))["layers"][0]["role"] == "deps"


def test_a_changed_lock_outside_the_context_makes_the_tree_dirty(
    tmp_path: Path, make_builder: BuilderFactory
) -> None:
    spec = "service: hello\nbuild:\n  context: src\n  requirements: requirements.txt\n"
    files: dict[str, str | bytes] = {
        "kiln.yaml": spec,
        "requirements.txt": FILES["requirements.txt"],
        "src/app.py": "print('hi')\n",
        ".gitignore": ".kiln/\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    builder = make_builder(tmp_path / "s")
    result = build(builder, repo)
    assert [layer.role for layer in result.layers] == ["deps", "app"]
    (repo / "requirements.txt").write_text(FILES["requirements.txt"] + "# more\n")
    with pytest.raises(Refused, match=r"uncommitted changes: .*requirements\.txt"):
        run_build(
            builder,
            read_spec(repo / "kiln.yaml"),
            repo,
            allow_dirty=False,
            actor="t",
            spec_file=repo / "kiln.yaml",
        )
    (repo / "requirements.txt").write_text(FILES["requirements.txt"])
    (repo / "kiln.yaml").write_text(spec + "  port: 9000\n")
    with pytest.raises(Refused, match=r"uncommitted changes: .*kiln\.yaml"):
        run_build(
            builder,
            read_spec(repo / "kiln.yaml"),
            repo,
            allow_dirty=False,
            actor="t",
            spec_file=repo / "kiln.yaml",
        )
