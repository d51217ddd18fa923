"""Incremental rebuilds through the scan index give exactly the digest of a fresh build.

Each case builds a repository, changes it, rebuilds with the same state (scan
index and layer cache warm), then builds a copy of the changed tree in a new
directory with an empty state, and compares digests. The events say whether
the scan index answered and how ("index, git": git named the candidates;
"index": one lstat per file), so each test also checks which path it took.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from kiln.core.artifacts.progress import Event, StepFinished
from kiln.core.artifacts.selection import Selection
from kiln.core.artifacts.tarformat import Entry, Kind
from kiln.errors import InvalidInput
from kiln.services import scanindex
from kiln.services.build import Builder, BuildResult, run_build
from kiln.services.sourcetree import SourceEntry
from kiln.services.spec import read_spec
from tests.integration.artifacts.conftest import FILES, BuilderFactory, age_files, git, make_repo

LAYER_FILES = 16


_AGED = itertools.count(1)


def age(path: Path) -> None:
    """Move one file's mtime out of the racy window, to a second no other file has.

    git compares whole seconds (unless built with USE_NSEC) and relies on its
    racy-clean rule for natural timestamps; an mtime moved back by a fixed amount
    could land in the second an earlier version had, same size, same ctime second,
    and git would rightly be fooled (docs/artifacts.md, known limits).
    """
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, (1_600_000_000 + next(_AGED)) * 10**9))


def age_tree(repo: Path) -> None:
    """Every file and directory out of the racy window (directories too: the git
    path trusts a directory record only when it is old enough)."""
    age_files(repo)
    for root, dirs, _files in os.walk(repo):
        dirs[:] = [d for d in dirs if d != ".git"]
        age(Path(root))


def build(builder: Builder, repo: Path) -> BuildResult:
    return run_build(builder, read_spec(repo / "kiln.yaml"), repo, allow_dirty=True, actor="t")


class Rig:
    def __init__(
        self,
        tmp_path: Path,
        make_builder: BuilderFactory,
        extra: dict[str, str] | None = None,
    ) -> None:
        files: dict[str, str | bytes] = dict(FILES)
        files.update({f"data/d{i % 9}/f{i:04d}.txt": f"file {i}\n" for i in range(240)})
        self.tmp = tmp_path
        self.repo = make_repo(tmp_path / "repo", files)
        for rel, text in (extra or {}).items():  # written after the commit: untracked
            (self.repo / rel).write_text(text)
        age_tree(self.repo)
        self.events: list[Event] = []
        self.make_builder = make_builder
        self.builder = make_builder(
            tmp_path / "state", files_per_layer=LAYER_FILES, on_event=self.events.append
        )
        self.first = self.rebuild()
        self.copies = 0

    def rebuild(self) -> BuildResult:
        self.events.clear()
        return build(self.builder, self.repo)

    def scan_detail(self) -> str:
        return next(
            e.detail for e in self.events if isinstance(e, StepFinished) and e.step == "scan"
        )

    def fresh(self) -> BuildResult:
        """A clean build of a copy of the tree as it is now, in a new directory and state."""
        self.copies += 1
        copy = self.tmp / f"copy{self.copies}"
        shutil.copytree(self.repo, copy, symlinks=True)
        builder = self.make_builder(self.tmp / f"fresh{self.copies}", files_per_layer=LAYER_FILES)
        return build(builder, copy)


@pytest.fixture
def rig(tmp_path: Path, make_builder: BuilderFactory) -> Rig:
    return Rig(tmp_path, make_builder)


def rebuilt_app_layers(result: BuildResult) -> int:
    return sum(1 for layer in result.layers if layer.role == "app" and not layer.cached)


def test_the_tree_is_split_into_many_layers(rig: Rig) -> None:
    assert sum(1 for layer in rig.first.layers if layer.role == "app") > 8
    assert "(index)" not in rig.scan_detail()  # the first build scans everything


def test_an_unchanged_tree_is_answered_by_the_index(rig: Rig) -> None:
    again = rig.rebuild()
    assert rig.scan_detail().endswith("0 changed (index, git)")
    assert again.digest == rig.first.digest
    assert rebuilt_app_layers(again) == 0


def test_a_changed_file_rebuilds_one_layer_and_matches_a_fresh_build(rig: Rig) -> None:
    target = rig.repo / "data" / "d3" / "f0120.txt"
    target.write_text("changed, and longer than before\n")
    age(target)
    after = rig.rebuild()
    assert rig.scan_detail().endswith("1 changed (index, git)")
    assert rebuilt_app_layers(after) == 1
    assert after.digest != rig.first.digest
    assert after.digest == rig.fresh().digest


def test_a_change_then_its_revert_gives_the_first_digest_again(rig: Rig) -> None:
    target = rig.repo / "pkg" / "util.py"
    original = target.read_bytes()
    target.write_text("X = 2\n")
    age(target)
    changed = rig.rebuild()
    target.write_bytes(original)
    age(target)
    reverted = rig.rebuild()
    # git finds the file identical to the commit again: only the index's record
    # that it had changed since makes it a candidate
    assert rig.scan_detail().endswith("1 changed (index, git)")
    assert changed.digest != rig.first.digest
    assert reverted.digest == rig.first.digest == rig.fresh().digest


def test_a_mode_change_alone_is_seen_and_matches_a_fresh_build(rig: Rig) -> None:
    (rig.repo / "app.py").chmod(0o755)  # only ctime and mode change, not mtime
    after = rig.rebuild()
    assert rig.scan_detail().endswith("1 changed (index, git)")
    assert after.digest != rig.first.digest
    assert after.digest == rig.fresh().digest


def test_a_rename_falls_back_to_a_full_scan_and_matches_a_fresh_build(rig: Rig) -> None:
    old = rig.repo / "data" / "d1" / "f0010.txt"
    old.rename(rig.repo / "data" / "d1" / "renamed.txt")
    after = rig.rebuild()
    assert "(index)" not in rig.scan_detail()
    assert after.digest != rig.first.digest
    assert after.digest == rig.fresh().digest
    # the full scan wrote a new index: the next build is answered by it again
    rig.rebuild()
    assert rig.scan_detail().endswith("0 changed (index)")
    age_tree(rig.repo)
    rig.rebuild()  # the walk refreshes the directory records: git can answer again
    rig.rebuild()
    assert rig.scan_detail().endswith("0 changed (index, git)")


@pytest.mark.parametrize("change", ["add", "delete", "new directory", "file becomes directory"])
def test_a_change_of_shape_matches_a_fresh_build(rig: Rig, change: str) -> None:
    data = rig.repo / "data"
    if change == "add":
        (data / "d2" / "new.txt").write_text("new\n")
    elif change == "delete":
        (data / "d2" / "f0011.txt").unlink()
    elif change == "new directory":
        (data / "fresh" / "deep").mkdir(parents=True)
        (data / "fresh" / "deep" / "x.txt").write_text("x\n")
    else:
        (data / "d2" / "f0011.txt").unlink()
        (data / "d2" / "f0011.txt").mkdir()
        (data / "d2" / "f0011.txt" / "inner.txt").write_text("inner\n")
    after = rig.rebuild()
    assert "(index)" not in rig.scan_detail()
    assert after.digest == rig.fresh().digest


def test_an_unselected_new_file_keeps_the_index(rig: Rig) -> None:
    cache = rig.repo / "pkg" / "__pycache__"
    cache.mkdir()
    (cache / "util.cpython-311.pyc").write_bytes(b"\0" * 16)
    (rig.repo / "pkg" / "stray.pyc").write_bytes(b"\0" * 16)
    after = rig.rebuild()
    assert rig.scan_detail().endswith("0 changed (index)")
    assert after.digest == rig.first.digest


def test_a_symlink_retargeted_outside_is_refused_on_the_index_path(rig: Rig) -> None:
    link = rig.repo / "pkg" / "link"
    link.symlink_to("util.py")
    rig.rebuild()
    link.unlink()
    link.symlink_to("../../outside")
    with pytest.raises(InvalidInput, match="leaves the build context"):
        rig.rebuild()
    assert "(index)" in rig.scan_detail()


def test_a_fresh_write_is_never_trusted_from_the_index(rig: Rig) -> None:
    # a file written inside the racy window counts as changed even when its
    # fingerprint equals the indexed one (a second write in the same tick would
    # leave every stat field alone)
    target = rig.repo / "app.py"
    target.write_text("print('now')\n")
    st = target.stat()
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_ino, st.st_dev)
    index = scanindex.build_index(
        0,
        [[SourceEntry(Entry("app/app.py", Kind.FILE, size=st.st_size), str(target), key)]],
        [("sha256:" + "0" * 64, 0, 1)],
        root="app",
    )
    selection = Selection(["app.py"], [])
    trusted = scanindex.changes(rig.repo, index, selection, racy_before_ns=st.st_mtime_ns + 1)
    racy = scanindex.changes(rig.repo, index, selection, racy_before_ns=st.st_mtime_ns)
    assert trusted == []
    assert racy is not None and [c.rel for c in racy] == ["app.py"]


def test_a_corrupt_index_is_ignored(rig: Rig) -> None:
    (index,) = (rig.tmp / "state" / "cache" / "index").iterdir()
    data = bytearray(index.read_bytes())
    data[-5] ^= 0xFF
    index.write_bytes(bytes(data))
    again = rig.rebuild()
    assert "(index)" not in rig.scan_detail()
    assert again.digest == rig.first.digest


def test_another_layer_mtime_does_not_reuse_indexed_layers(
    rig: Rig, make_builder: BuilderFactory
) -> None:
    builder = make_builder(
        rig.tmp / "state",
        files_per_layer=LAYER_FILES,
        environ={"SOURCE_DATE_EPOCH": "1000000000"},
        on_event=rig.events.append,
    )
    target = rig.repo / "app.py"  # a dirty tree: its tag names the digest, so no tag clash
    target.write_text("print('dirty')\n")
    age(target)
    rig.events.clear()
    other = build(builder, rig.repo)
    assert other.digest != rig.first.digest
    assert rebuilt_app_layers(other) == sum(1 for x in other.layers if x.role == "app")


def test_a_staged_change_is_seen_through_git(rig: Rig) -> None:
    target = rig.repo / "pkg" / "util.py"
    target.write_text("X = 'staged'\n")
    age(target)
    git(rig.repo, "add", "pkg/util.py")  # the work tree now matches git's index
    after = rig.rebuild()
    assert rig.scan_detail().endswith("1 changed (index, git)")
    assert after.digest == rig.fresh().digest


def test_a_committed_change_is_seen_through_git(rig: Rig) -> None:
    target = rig.repo / "data" / "d4" / "f0004.txt"
    target.write_text("committed\n")
    age(target)
    git(rig.repo, "commit", "-qam", "change")  # HEAD moves; the index compares with C0
    after = rig.rebuild()
    assert rig.scan_detail().endswith("1 changed (index, git)")
    assert not after.inputs.dirty
    assert after.digest == rig.fresh().digest


def test_a_changed_untracked_file_is_a_candidate(
    tmp_path: Path, make_builder: BuilderFactory
) -> None:
    rig = Rig(tmp_path, make_builder, extra={"local.env": "A=1\n"})
    target = rig.repo / "local.env"
    target.write_text("A=2\n")  # same size: git never knew it; the index did
    age(target)
    after = rig.rebuild()
    assert rig.scan_detail().endswith("1 changed (index, git)")
    assert after.digest != rig.first.digest
    assert after.digest == rig.fresh().digest


def test_assume_unchanged_entries_make_kiln_walk_instead(rig: Rig) -> None:
    git(rig.repo, "update-index", "--assume-unchanged", "app.py")
    target = rig.repo / "app.py"
    target.write_text("print('git is told not to look')\n")
    age(target)
    after = rig.rebuild()
    assert rig.scan_detail().endswith("1 changed (index)")
    assert after.digest == rig.fresh().digest


def test_attributes_keep_git_out_of_it(tmp_path: Path, make_builder: BuilderFactory) -> None:
    rig = Rig(tmp_path, make_builder, extra={".gitattributes": "*.txt text eol=lf\n"})
    target = rig.repo / "data" / "d0" / "f0000.txt"
    target.write_bytes(target.read_bytes().replace(b"\n", b"\r\n"))  # git: "no change"
    age(target)
    after = rig.rebuild()
    assert rig.scan_detail().endswith("1 changed (index)")
    assert after.digest == rig.fresh().digest


def test_git_does_not_vouch_under_an_attributes_file_above_the_context(tmp_path: Path) -> None:
    from kiln.adapters.artifacts.git import GitRepo

    plain = make_repo(tmp_path / "plain", {"svc/app.py": "x = 1\n", "README": "r\n"})
    above = make_repo(
        tmp_path / "above", {"svc/app.py": "x = 1\n", ".gitattributes": "*.py text\n"}
    )
    view = GitRepo().diff_work_tree(plain / "svc", None, tracked=True)
    assert view is not None and view.tracked == frozenset({"app.py"})
    assert GitRepo().diff_work_tree(above / "svc", None) is None
