"""Build throughput and incremental rebuilds vs ``tar --sort=name | sha256sum``.

Generates a tree of ~20k files / ~200 MB (``--quick``: 2k / 20 MB), commits it
to a git repository (kiln builds commits), and times, side by side in one run:

* baseline: ``tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0
  --exclude=./.git -cf - . | sha256sum``: one deterministic tar of the tree, hashed;
* kiln build: git's view of the tree, scan, deterministic tar layers streamed
  into a fresh store (temp file, fsync, rename) while hashed, config, manifest;
* kiln rebuild after a one-file change (not committed: the edit-build loop),
  same store, cache and scan index: git names the candidates
  (``kiln.services.scanindex``);
* the same rebuild with git out of the picture (a tree outside git, or one git
  cannot vouch for): one ``lstat`` per file against the scan index;
* for context: the baseline also writing its archive to disk (``tee`` + ``sync``,
  which a store must do and ``| sha256sum`` does not), and the scan alone.

Targets: build at most 1.5 times the baseline; rebuild at most 0.1 of a full build.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import report
from kiln.adapters.artifacts.git import GitRepo
from kiln.adapters.artifacts.local import LocalStore
from kiln.core.spec.loader import load_spec
from kiln.ports.artifacts import SourceRepo, SourceState, WorkTreeDiff
from kiln.ports.clock import SystemClock
from kiln.services.build import Builder, BuildInputs

SPEC = b'service: bench\nbuild:\n  command: ["python", "app.py"]\n'


class _NoDeps:
    def environment(self) -> str:
        return "none"

    def install(self, requirements: Path, target: Path) -> None:
        raise AssertionError("the benchmark tree has no requirements")


class _NoGit:
    """Git as seen from a tree git cannot vouch for: the scan index walks instead."""

    def __init__(self) -> None:
        self._git = GitRepo()

    def state(self, directory: Path) -> SourceState:
        return self._git.state(directory)

    def diff_work_tree(
        self, directory: Path, revision: str | None, *, tracked: bool = False
    ) -> WorkTreeDiff | None:
        return None

    def last_change(self, directory: Path, path: Path) -> int | None:
        return self._git.last_change(directory, path)

    def export(self, directory: Path, revision: str, dest: Path) -> Path:
        return self._git.export(directory, revision, dest)


class _Nobody:
    def record(self, *args: object, **kwargs: object) -> int:
        return 0


def generate(root: Path, files: int, total_bytes: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    mean = total_bytes // files
    written = 0
    past = time.time() - 3600
    blob = os.urandom(4 * mean + 65536)
    for i in range(files):
        directory = root / f"pkg{i % 200:03d}" / f"sub{i % 7}"
        directory.mkdir(parents=True, exist_ok=True)
        size = max(1, int(rng.expovariate(1 / mean)))
        size = min(size, len(blob) - 1)
        start = rng.randrange(0, len(blob) - size)
        path = directory / f"m{i:06d}.py"
        path.write_bytes(blob[start : start + size])
        os.utime(path, (past, past))
        written += size
    (root / "kiln.yaml").write_bytes(SPEC)
    os.utime(root / "kiln.yaml", (past, past))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "tree"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)
    for directory, _dirs, _files in os.walk(root):
        os.utime(directory, (past, past))  # old enough for the scan index to trust
    return written


def baseline(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(  # noqa: S602 - a fixed pipeline: the baseline is the shell's own
        "tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --exclude=./.git "
        "-cf - . | sha256sum",
        shell=True,
        cwd=root,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def baseline_with_write(root: Path, out: Path) -> float:
    """The same pipeline, also writing the archive to disk and syncing it (as a store must)."""
    start = time.perf_counter()
    subprocess.run(  # noqa: S602 - a fixed pipeline
        "tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --exclude=./.git "
        f"-cf - . | tee {out} | sha256sum && sync -f {out}",
        shell=True,
        cwd=root,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - start
    out.unlink()
    return elapsed


def scan_only(root: Path, builder: Builder) -> float:
    spec = load_spec(SPEC, source="kiln.yaml")
    start = time.perf_counter()
    builder.scan(spec, root)
    return time.perf_counter() - start


def make_builder(state: Path, source: SourceRepo | None = None) -> Builder:
    return Builder(
        store=LocalStore(state / "store"),
        source=source or GitRepo(),
        installer=_NoDeps(),
        recorder=_Nobody(),
        clock=SystemClock(),
        cache_dir=state / "cache",
    )


def kiln_build(root: Path, builder: Builder) -> float:
    spec = load_spec(SPEC, source="kiln.yaml")
    inputs = BuildInputs(
        service="bench",
        version="1.0.0",
        revision=None,
        dirty=True,
        remote=None,
        epoch=1_700_000_000,
        deps_epoch=1_700_000_000,
    )
    start = time.perf_counter()
    builder.build(spec, root, inputs=inputs, tag=False, record=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_build")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--files", type=int, help="Override the number of files.")
    parser.add_argument("--mb", type=int, help="Override the tree size in MiB.")
    args = parser.parse_args(argv)
    files, size, repeat = (2_000, 20 << 20, 3) if args.quick else (20_000, 210 << 20, 5)
    files = args.files or files
    size = (args.mb << 20) if args.mb else size
    with tempfile.TemporaryDirectory(prefix="kiln-bench-build-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        tree.mkdir()
        total = generate(tree, files, size)
        baseline(tree)  # warm the page cache for both sides
        # The three full-tree cases take turns, so drifting load on a shared
        # machine (and the writeback one case leaves behind) hits each alike.
        base: list[float] = []
        written: list[float] = []
        full: list[float] = []
        for run in range(repeat):
            base.append(baseline(tree))
            written.append(baseline_with_write(tree, work / "archive.tar"))
            state = work / f"state{run}"
            full.append(kiln_build(tree, make_builder(state)))
            shutil.rmtree(state)
        victims = sorted(p for p in tree.rglob("*.py") if ".git" not in p.parts)
        rebuilds: list[float] = []
        walked: list[float] = []
        scans: list[float] = []
        warm = make_builder(work / "warm")
        walker = make_builder(work / "walk", _NoGit())
        kiln_build(tree, warm)
        kiln_build(tree, walker)
        for run in range(repeat):
            victim = victims[(run * 7919) % len(victims)]
            victim.write_bytes(victim.read_bytes() + f"# change {run}\n".encode())
            # An edit made a few seconds before the build: a file changed within the
            # last RACY_SECONDS is never trusted from the cache (see services/build.py),
            # which would charge this loop for the previous iteration's edit too.
            past = time.time() - 3
            os.utime(victim, (past, past))
            rebuilds.append(kiln_build(tree, warm))
            walked.append(kiln_build(tree, walker))
            scans.append(scan_only(tree, warm))
    b, f, r = statistics.median(base), statistics.median(full), statistics.median(rebuilds)
    w, sc, wk = statistics.median(written), statistics.median(scans), statistics.median(walked)
    mb = total / 1e6
    rows = [
        {"case": "tar --sort=name | sha256sum", "seconds": b, "MB/s": mb / b, "vs": "baseline"},
        {"case": "  same, | tee file + sync", "seconds": w, "MB/s": mb / w, "vs": f"{w / b:.2f}x"},
        {"case": "kiln build (cold store)", "seconds": f, "MB/s": mb / f, "vs": f"{f / b:.2f}x"},
        {"case": "kiln rebuild, 1 file changed", "seconds": r, "vs": f"{r / f:.3f} of build"},
        {"case": "  of which: scan (git + index)", "seconds": sc, "vs": f"{sc / f:.3f} of build"},
        {"case": "  same, outside git (lstat all)", "seconds": wk, "vs": f"{wk / f:.3f} of build"},
    ]
    meta = {
        "files": files,
        "bytes": total,
        "repeat": repeat,
        "build_vs_baseline": f / b,
        "rebuild_vs_build": r / f,
        "rebuild_outside_git_vs_build": wk / f,
        "targets": {"build_vs_baseline": 1.5, "rebuild_vs_build": 0.1},
        "build_vs_baseline_with_write": f / w,
        "scan_vs_build": sc / f,
        "samples": {
            "baseline": base,
            "baseline_with_write": written,
            "build": full,
            "rebuild": rebuilds,
            "rebuild_outside_git": walked,
            "scan": scans,
        },
    }
    report("build", rows, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
