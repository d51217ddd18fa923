"""``kiln down``: stop everything one state directory runs.

The controller (by the PID it recorded), each environment's router (by the PID
the kernel reports for its admin socket, ``SO_PEERCRED``, so a stale PID file
can never make us signal a stranger; for HAProxy, its runtime API socket), and
every instance the providers own.
Desired state and the ledger are kept: ``kiln deploy`` starts it all again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from kiln.bootstrap import runtime as runtime_boot
from kiln.bootstrap.controller import stop as stop_controller
from kiln.bootstrap.dataplane import admin_socket, haproxy_socket
from kiln.core.runtime.model import SERVICE
from kiln.core.spec.models import ServiceSpec


@dataclass
class Stopped:
    controller: bool = False
    routers: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)


def peer_pid(path: Path) -> int | None:
    """The PID of the process listening on a unix socket, from the kernel."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return None
        creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", creds)
    return pid if pid > 0 else None


def _terminate(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def down(state_dir: Path, spec: ServiceSpec) -> Stopped:
    stopped = Stopped(controller=stop_controller(state_dir))
    for env in spec.environments:
        # Both kinds: an environment that switched kind may still run the other one.
        found = False
        for sock in (admin_socket(state_dir, env.name), haproxy_socket(state_dir, env.name)):
            pid = peer_pid(sock)
            if pid is not None:
                _terminate(pid)
                found = True
        if found:
            stopped.routers.append(env.name)
    kinds = {env.runtime.provider.value for env in spec.environments}
    for kind in sorted(kinds):
        provider = runtime_boot.provider(kind, state_dir)
        for instance in provider.list({SERVICE: spec.service}):
            provider.destroy(instance.id, drain_timeout=5.0)
            stopped.instances.append(instance.id.value)
    return stopped
