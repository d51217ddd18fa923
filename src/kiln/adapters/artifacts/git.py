"""``SourceRepo`` on the git command line.

Every call runs ``git`` with a fixed, minimal environment (no pager, no
prompts, C locale) so its output does not depend on the user's configuration.
A directory outside any work tree is reported as revision ``None``; the build
treats that like a dirty tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kiln.errors import InvalidInput, NotFound, Permanent
from kiln.ports.artifacts import SourceState, WorkTreeDiff

# Settings that make git's stat check as strict as kiln's: the executable bit
# counts, ctime counts, every stat field counts, no file-system monitor is
# trusted, and no attributes file outside the repository filters content.
_STRICT = (
    "-c", "core.fileMode=true",
    "-c", "core.trustctime=true",
    "-c", "core.checkStat=default",
    "-c", "core.ignoreStat=false",
    "-c", "core.fsmonitor=false",
    "-c", "core.attributesFile=/dev/null",
)  # fmt: skip
# ls-files -v tags of entries git does not check: lowercase (assume-unchanged), S (skip-worktree)
_UNCHECKED_TAG = re.compile(r"\0[a-zS] ")
_CREDENTIALS = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)


def strip_credentials(url: str) -> str:
    """A remote URL without any ``user:password@`` part (never record a secret)."""
    return _CREDENTIALS.sub(r"\g<scheme>", url)


class GitRepo:
    def __init__(self, *, git: str | None = None, timeout: float = 60.0) -> None:
        self._git = git or shutil.which("git") or "git"
        self._timeout = timeout

    def _run(self, directory: Path, *args: str, check: bool = True) -> str | None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/"),
            "LC_ALL": "C",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_PAGER": "cat",
        }
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [self._git, *args],
                cwd=directory,
                env=env,
                capture_output=True,
                timeout=self._timeout,
                check=False,
            )
        except FileNotFoundError:
            raise Permanent(
                "git is not installed", hint="install git, or build with --allow-dirty"
            ) from None
        except subprocess.TimeoutExpired:
            raise Permanent(f"git {args[0]} took longer than {self._timeout:.0f}s") from None
        if done.returncode != 0:
            if check:
                raise Permanent(
                    f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}"
                )
            return None
        return done.stdout.decode("utf-8", "surrogateescape")

    def state(self, directory: Path) -> SourceState:
        if not directory.is_dir():
            raise NotFound(f"{directory} is not a directory")
        top = self._run(directory, "rev-parse", "--show-toplevel", check=False)
        head = self._run(directory, "rev-parse", "--verify", "-q", "HEAD", check=False)
        if top is None or head is None:
            return SourceState(revision=None, commit_time=None, remote=None, version=None)
        listing = self._run(directory, "ls-files", "-v", "-z", "--", ".") or ""
        modified = self._run(directory, "diff", "--name-only", "--relative", "-z", "HEAD") or ""
        # "TAG path": git does not check entries marked assume-unchanged (lowercase
        # tag) or skip-worktree (S), so kiln cannot know they are unmodified
        rows = [(line[:1], line[2:]) for line in listing.split("\0") if len(line) > 2]
        unchecked = {path for tag, path in rows if tag.islower() or tag == "S"}
        when = self._run(directory, "log", "-1", "--format=%ct", "HEAD")
        remote = self._run(directory, "config", "--get", "remote.origin.url", check=False)
        described = self._run(directory, "describe", "--tags", "--abbrev=0", check=False)
        return SourceState(
            revision=head.strip(),
            commit_time=int(when.strip()) if when and when.strip() else None,
            tracked=frozenset(path for _, path in rows),
            modified=frozenset(p for p in modified.split("\0") if p) | unchecked,
            remote=strip_credentials(remote.strip()) if remote and remote.strip() else None,
            version=described.strip() if described and described.strip() else None,
        )

    def diff_work_tree(
        self, directory: Path, revision: str | None, *, tracked: bool = False
    ) -> WorkTreeDiff | None:
        rev = revision or (self._run(directory, "rev-parse", "--verify", "-q", "HEAD", check=False))
        if not rev:
            return None
        rev = rev.strip()
        # three independent questions, asked at once (each is a process start)
        with ThreadPoolExecutor(3) as pool:
            asked = [
                pool.submit(self._run, directory, *args, check=False)
                for args in (
                    (*_STRICT, "ls-files", "-vsz", "--", "."),
                    ("rev-parse", "--git-common-dir", "--show-toplevel"),
                    (
                        *_STRICT,
                        "diff",
                        "--name-only",
                        "--no-renames",
                        "--relative",
                        "-z",
                        rev,
                        "--",
                        ".",
                    ),
                )
            ]
            listing, common, differing = (future.result() for future in asked)
        if listing is None or common is None or differing is None:
            return None
        if _UNCHECKED_TAG.search("\0" + listing):
            return None
        if " 160000 " in listing or ".gitattributes\0" in listing:
            return None  # a submodule, or attributes that may filter content (false hits: safe)
        common_dir, _, top = common.strip().partition("\n")
        if (directory / common_dir / "info" / "attributes").exists():
            return None
        # attributes files above the directory apply to it too
        here, stop = directory.resolve(), Path(top.strip()).resolve()
        while here != stop and stop in here.parents:
            here = here.parent
            if (here / ".gitattributes").exists():
                return None
        return WorkTreeDiff(
            revision=rev,
            differing=frozenset(p for p in differing.split("\0") if p),
            tracked=frozenset(
                line.partition("\t")[2] for line in listing.split("\0") if "\t" in line
            )
            if tracked
            else frozenset(),
        )

    def last_change(self, directory: Path, path: Path) -> int | None:
        out = self._run(directory, "log", "-1", "--format=%ct", "--", str(path), check=False)
        return int(out.strip()) if out and out.strip() else None

    def export(self, directory: Path, revision: str, dest: Path) -> Path:
        if not re.fullmatch(r"[0-9a-f]{7,64}", revision):
            raise InvalidInput(f"{revision!r} is not a commit id")
        top_text = self._run(directory, "rev-parse", "--show-toplevel") or ""
        prefix = self._run(directory, "rev-parse", "--show-prefix") or ""
        if self._run(directory, "cat-file", "-e", f"{revision}^{{commit}}", check=False) is None:
            raise NotFound(
                f"commit {revision} is not in the repository at {top_text.strip()}",
                hint="fetch it first (git fetch), then run the rebuild again",
            )
        archive = dest / "source.tar"
        # from the top level: run in a subdirectory, git archive holds only that subtree
        self._run(
            Path(top_text.strip()), "archive", "--format=tar", f"--output={archive}", revision
        )
        tree = dest / "tree"
        tree.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        archive.unlink()
        return tree / prefix.strip()
