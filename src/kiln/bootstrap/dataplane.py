"""Each environment's data plane: find its router, or start one that outlives us.

The embedded router runs as its own process (``kiln router --env NAME``), started
detached so traffic keeps flowing when the controller or the CLI exits. Its
admin socket is ``run/router-<env>.sock`` and its last table
``run/router-<env>.json``. The listener address is fixed the first time: when the
spec asks for port 0, kiln picks a free loopback port once and records it in
``run/router-<env>.addr``, so the environment's URL does not move on restarts.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.bootstrap.detach import spawn_detached
from kiln.core.spec.models import Environment, RouterKind
from kiln.errors import ConfigError, Temporary
from kiln.fsio import write_atomic
from kiln.ports.traffic import Router

START_TIMEOUT = 30.0


def _run(state_dir: Path) -> Path:
    return state_dir / "run"


def admin_socket(state_dir: Path, environment: str) -> Path:
    return _run(state_dir) / f"router-{environment}.sock"


def listen_address(state_dir: Path, env: Environment) -> str:
    """The environment's fixed ``host:port``, chosen once."""
    recorded = _run(state_dir) / f"router-{env.name}.addr"
    if recorded.exists():
        return recorded.read_text(encoding="utf-8").strip()
    host, _, port = env.router.listen.rpartition(":")
    if port == "0":
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = str(probe.getsockname()[1])
    address = f"{host}:{port}"
    write_atomic(recorded, (address + "\n").encode(), mode=0o600)
    return address


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def start_routers(state_dir: Path, envs: list[Environment]) -> None:
    """Start every environment's router that is not running, all at once, then wait."""
    missing = [
        env
        for env in envs
        if env.router.kind is RouterKind.EMBEDDED
        and not _accepts(admin_socket(state_dir, env.name))
    ]
    for env in missing:
        _start(state_dir, env)
    deadline = time.monotonic() + START_TIMEOUT
    for env in missing:
        sock = admin_socket(state_dir, env.name)
        while not _accepts(sock):
            if time.monotonic() > deadline:
                raise Temporary(
                    f"the router of {env.name} did not start within {START_TIMEOUT:g}s",
                    hint=f"see {state_dir / 'logs' / f'router-{env.name}.log'}",
                )
            time.sleep(0.05)


def router_for(state_dir: Path, env: Environment) -> Router:
    """A ``Router`` for the environment, starting its data plane if it is not running."""
    if env.router.kind is not RouterKind.EMBEDDED:
        raise ConfigError(
            f"environment {env.name}: router kind {env.router.kind} is not wired into the "
            "controller yet",
            hint="use router: {kind: embedded}; the HAProxy adapter is driven by its own tests",
        )
    start_routers(state_dir, [env])
    return EmbeddedRouterClient(socket_path=admin_socket(state_dir, env.name))


def _start(state_dir: Path, env: Environment) -> None:
    log = state_dir / "logs" / f"router-{env.name}.log"
    command = [
        sys.executable, "-m", "kiln", "--state-dir", str(state_dir),
        "router", "--env", env.name, "--listen", listen_address(state_dir, env),
    ]  # fmt: skip
    spawn_detached(command, log)
