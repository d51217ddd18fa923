"""Building a named revision: one commit checked out in a fresh git worktree.

The CI webhook (and ``kiln pipeline run --revision``) builds the commit it was
told about, not whatever the serving checkout happens to hold:

1. ``resolve_commit``: the revision must be a hex commit id (7-64 digits;
   nothing else reaches git's command line) that exists in the repository.
   When it does not, and the repository has an ``origin`` remote, it is
   fetched from there once (bounded in time). Still missing: ``Refused``.
2. ``worktree``: ``git worktree add --detach`` of that commit into a new empty
   directory. A fresh worktree holds exactly the commit; it is checked to be
   clean all the same, since a dirty tree is never built. On any exit
   (failure, Ctrl-C) it is removed and git's worktree list pruned.

The serving checkout itself is never touched: not its HEAD, its index nor
its files.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kiln.errors import InvalidInput, NotFound, Permanent, Refused

_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
GIT_TIMEOUT = 60.0
FETCH_TIMEOUT = 120.0


def _git(repo: Path, *args: str, timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603 - fixed argv; revisions are checked hex
            ["git", "-C", str(repo), *args],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise Permanent("git is not installed; kiln needs it to check out a revision") from None
    except subprocess.TimeoutExpired:
        raise Permanent(f"git {args[0]} did not finish within {timeout:.0f}s") from None


def check_revision(revision: str) -> str:
    """A commit id as CI systems send it (hex, lower case); anything else is refused."""
    value = revision.strip().lower()
    if not _COMMIT.match(value):
        raise InvalidInput(
            f"revision {revision[:80]!r} is not a commit id",
            hint="send the full hex commit id (GitHub's `after`, GitLab's `checkout_sha`)",
        )
    return value


def _commit(repo: Path, revision: str) -> str | None:
    done = _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def toplevel(directory: Path) -> tuple[Path, Path]:
    """The repository holding ``directory``, and ``directory``'s path inside it."""
    top = _git(directory, "rev-parse", "--show-toplevel")
    prefix = _git(directory, "rev-parse", "--show-prefix")
    if top.returncode != 0 or prefix.returncode != 0:
        raise NotFound(
            f"{directory} is not in a git repository; kiln can only build committed revisions",
            hint="serve the service from a git checkout",
        )
    return Path(top.stdout.strip()), Path(prefix.stdout.strip() or ".")


def head(repo: Path) -> str:
    commit = _commit(repo, "HEAD")
    if commit is None:
        raise Refused(f"{repo} has no commit yet", hint="commit the service first")
    return commit


def resolve_commit(repo: Path, revision: str, *, fetch: bool = True) -> str:
    """The full id of ``revision`` in ``repo``, fetched from ``origin`` if need be."""
    wanted = check_revision(revision)
    commit = _commit(repo, wanted)
    if commit is None and fetch and _git(repo, "remote", "get-url", "origin").returncode == 0:
        _git(repo, "fetch", "--quiet", "--no-tags", "origin", wanted, timeout=FETCH_TIMEOUT)
        commit = _commit(repo, wanted)
    if commit is None:
        raise Refused(
            f"revision {wanted} does not exist in the repository at {repo}",
            hint="push it there first; kiln builds only commits the repository holds",
        )
    return commit


@contextlib.contextmanager
def worktree(repo: Path, commit: str, parent: Path) -> Iterator[Path]:
    """A fresh, clean worktree of ``commit`` under ``parent``; always removed afterwards."""
    check_revision(commit)
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = Path(tempfile.mkdtemp(prefix=f"{commit[:12]}-", dir=parent))
    try:
        added = _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
        if added.returncode != 0:
            raise Permanent(
                f"could not check out {commit[:12]}: {added.stderr.strip()[:300]}",
                hint="is the repository readable, and the disk not full?",
            )
        status = _git(path, "status", "--porcelain", "--untracked-files=no")
        if status.returncode != 0 or status.stdout.strip():
            raise Refused(f"the fresh checkout of {commit[:12]} is not clean; nothing is built")
        yield path
    finally:
        _remove(repo, path)


def _remove(repo: Path, path: Path) -> None:
    """Remove the worktree; a second Ctrl-C while doing so does not skip it."""
    while True:
        try:
            with contextlib.suppress(Permanent):
                _git(repo, "worktree", "remove", "--force", str(path))
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(Permanent):
                _git(repo, "worktree", "prune")
            return
        except KeyboardInterrupt:
            continue
