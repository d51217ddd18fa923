"""The bubblewrap sandbox of the process runtime.

What an instance sees inside ``bwrap``:

- ``/usr`` (and ``/bin``, ``/lib``, ``/lib64``, ``/sbin`` as on the host),
  the host Python's prefix and the instance's tree, all read-only;
- its scratch directory (read-write; also ``$HOME`` and ``$TMPDIR``), a private
  ``/tmp`` (tmpfs), fresh ``/proc`` and ``/dev``, a few files of ``/etc``;
- new mount, PID, IPC and UTS namespaces and no capabilities (``--cap-drop
  ALL``), so even an instance started by root cannot remount its tree writable;
- with ``network: isolated`` (the default) a new, empty network namespace
  (``--unshare-net``: a loopback of its own and nothing else) plus one socket
  from the host's namespace: the provider binds and listens on the instance's
  port on the host's loopback and passes that socket in as fd 3, following
  systemd's socket-activation convention (``LISTEN_FDS=1``, ``LISTEN_PID``).
  The router reaches the app through that socket; the app can open no outgoing
  connection and no other port of it is reachable from the host.

How the socket gets to fd 3 with ``LISTEN_PID`` right. ``Popen`` keeps a passed
fd's number, and ``sh`` only redirects fds 0-9, so the provider hands the socket
over as stdin, and the argv is::

    /bin/sh -c 'exec 3<&0 </dev/null; exec "$@"' kiln-listen \
        bwrap ... -- /bin/sh -c 'export LISTEN_PID=$$; exec "$@"' kiln-listen-pid APP...

The outer shell moves the socket to fd 3 and gives bwrap ``/dev/null`` as
stdin, then becomes bwrap (same pid, so the record's pid and start time hold).
bwrap passes fds above 2 on to the command and closes them in its own monitor
and init processes, so the app ends up the only holder of the socket: when it
closes the socket or exits, the port refuses connections at once, as without a
sandbox. ``LISTEN_PID`` must be the app's own pid, which inside the PID
namespace is only known once the app runs (bwrap is pid 1 there, the app pid
2): the inner shell names its own pid and ``exec``s the app, which keeps it.
The PID namespace stays, and the app is not pid 1 (no ``--as-pid-1``): a pid 1
ignores every signal it has no handler for, so SIGTERM would do nothing to an
app without one.

``decide`` turns the spec's ``sandbox`` and ``network`` settings into what an
instance gets, from what ``probe`` finds bwrap can do on this host:
``bubblewrap`` refuses when anything asked for is missing; ``auto`` takes the
best there is and says what it gave up in ``Confinement.note``.

No ``--die-with-parent``: instances must outlive the controller.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.core.runtime.model import Network
from kiln.errors import ConfigError, Refused

_TOP = ("/bin", "/lib", "/lib64", "/sbin")
_ETC = ("/etc/hosts", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/localtime")
_NAMESPACES = ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--cap-drop", "ALL")
#: The fd a passed listening socket has in the app (``SD_LISTEN_FDS_START``).
LISTEN_FD = 3


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


@dataclass(frozen=True)
class Confinement:
    """What one instance runs in: bwrap or nothing, and which network."""

    bwrap: str | None
    network: Network
    note: str = ""  # what ``auto`` gave up, and why

    @property
    def sandbox(self) -> str:
        return "bubblewrap" if self.bwrap else "none"


Probe = Callable[[bool], str | None]
"""(with a network namespace?) -> None when bwrap can start such a sandbox, else why not."""


def decide(setting: str, network: Network, *, bwrap: str | None, probe: Probe) -> Confinement:
    """The confinement the settings ask for, as far as this host allows.

    ``setting`` is ``runtime.sandbox`` (auto | bubblewrap | none), ``network``
    is ``runtime.network`` (isolated | host). Without a sandbox there is no
    network isolation either.
    """
    if setting == "none":
        return Confinement(None, "host")
    strict = setting == "bubblewrap"
    if bwrap is None:
        if strict:
            raise ConfigError(
                "runtime.sandbox is bubblewrap but bwrap is not installed",
                hint="install bubblewrap, or set runtime.sandbox to auto or none",
            )
        return Confinement(None, "host", "bwrap is not installed")
    without_netns = probe(True) if network == "isolated" else None
    if network == "isolated" and without_netns is None:
        return Confinement(bwrap, "isolated")
    unusable = probe(False)
    if unusable is not None:
        if strict:
            raise Refused(
                f"runtime.sandbox is bubblewrap but bwrap cannot start a sandbox here: {unusable}",
                hint="bwrap needs unprivileged user namespaces (or to be setuid); "
                "or set runtime.sandbox to auto or none",
            )
        return Confinement(None, "host", f"bwrap cannot start a sandbox here: {unusable}")
    if without_netns is not None:
        if strict:
            raise Refused(
                "runtime.network is isolated but bwrap cannot create a network namespace "
                f"here: {without_netns}",
                hint="set runtime.network to host (sandboxed, outbound network allowed), "
                "or runtime.sandbox to auto to fall back to that",
            )
        return Confinement(bwrap, "host", f"no network namespace here: {without_netns}")
    return Confinement(bwrap, "host")


def probe(bwrap: str, unshare_net: bool, *, timeout: float = 10.0) -> str | None:
    """Start ``true`` in a sandbox like an instance's; None if it worked, else bwrap's word."""
    args = [bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", *_NAMESPACES]
    if unshare_net:
        args.append("--unshare-net")
    args += ["--", "true"]
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv, no shell
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env={"PATH": "/usr/bin:/bin"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"bwrap did not finish within {timeout:g} s"
    except OSError as exc:
        return f"{bwrap}: {exc.strerror}"
    if done.returncode == 0:
        return None
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"bwrap exited with code {done.returncode}"


def handover(command: Sequence[str]) -> list[str]:
    """``command`` behind a shell that moves the socket on stdin to fd 3 (stdin: /dev/null)."""
    script = f'exec {LISTEN_FD}<&0 </dev/null; exec "$@"'
    return ["/bin/sh", "-c", script, "kiln-listen", *command]


def activation(command: Sequence[str]) -> list[str]:
    """``command`` behind a shell that sets ``LISTEN_PID`` to its pid, which the command keeps."""
    return ["/bin/sh", "-c", 'export LISTEN_PID=$$; exec "$@"', "kiln-listen-pid", *command]


def wrap(
    command: Sequence[str],
    *,
    bwrap: str,
    tree: Path,
    scratch: Path,
    python_prefix: Path,
    cwd: Path,
    network: Network = "host",
    activate: bool = False,
) -> list[str]:
    """The bwrap argv; with ``activate`` the socket on stdin becomes the app's fd 3."""
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
    args += list(_NAMESPACES)
    if network == "isolated":
        args.append("--unshare-net")
    if not activate:
        return [*args, "--chdir", str(cwd), "--", *command]
    return handover([*args, "--chdir", str(cwd), "--", *activation(command)])
