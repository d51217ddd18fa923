"""The bubblewrap sandbox of the process runtime.

What an instance sees inside ``bwrap``:

- ``/usr`` (and ``/bin``, ``/lib``, ``/lib64``, ``/sbin`` as on the host),
  the host Python's prefix and the instance's tree, all read-only;
- its scratch directory (read-write; also ``$HOME`` and ``$TMPDIR``), a private
  ``/tmp`` (tmpfs), fresh ``/proc`` and ``/dev``, a few files of ``/etc``;
- new mount, PID, IPC and UTS namespaces and no capabilities (``--cap-drop
  ALL``), so even an instance started by root cannot remount its tree writable.

Network, precisely: the sandbox keeps the host's network namespace. A new one
(``--unshare-net``) would give the instance a private loopback that the router,
in the host namespace, could not reach. So a sandboxed instance can still open
outgoing connections and bind other ports; "no network except its own port" is
not enforced by the process runtime. Use the podman runtime (its own network
namespace, only the published port reachable) when that matters.

No ``--die-with-parent``: instances must outlive the controller.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from kiln.errors import ConfigError

_TOP = ("/bin", "/lib", "/lib64", "/sbin")
_ETC = ("/etc/hosts", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/localtime")


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def choose(setting: str, *, bwrap: str | None) -> str | None:
    """The bwrap path to use, or None for no sandbox; refuse ``bubblewrap`` without bwrap."""
    if setting == "none":
        return None
    if setting == "bubblewrap" and bwrap is None:
        raise ConfigError(
            "runtime.sandbox is bubblewrap but bwrap is not installed",
            hint="install bubblewrap, or set runtime.sandbox to auto or none",
        )
    return bwrap


def wrap(
    command: Sequence[str],
    *,
    bwrap: str,
    tree: Path,
    scratch: Path,
    python_prefix: Path,
    cwd: Path,
) -> list[str]:
    args = [bwrap, "--ro-bind", "/usr", "/usr"]
    for top in _TOP:
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    for name in _ETC:
        args += ["--ro-bind-try", name, name]
    # A private tmpfs, not the host's /tmp; mounted before the binds so a tree or
    # scratch directory that lives under the host's /tmp stays visible.
    args += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]  # noqa: S108
    args += ["--ro-bind", str(python_prefix), str(python_prefix)]
    args += ["--ro-bind", str(tree), str(tree)]
    args += ["--bind", str(scratch), str(scratch)]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--cap-drop", "ALL"]
    args += ["--chdir", str(cwd), "--", *command]
    return args
