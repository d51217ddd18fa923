"""Running the controller in this process: ``kiln serve``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn

from kiln.adapters.keys.tokens import ensure_local_admin, ensure_local_reader, load_table
from kiln.api import dashboard as dashboard_api
from kiln.api.app import create_app
from kiln.bootstrap import dashboard as dashboard_boot
from kiln.bootstrap.controller import Address, ControllerClient, socket_path
from kiln.bootstrap.deploy import controller as build_controller
from kiln.bootstrap.deploy import leader_lock
from kiln.core.spec.models import ServiceSpec
from kiln.errors import ConfigError
from kiln.fsio import write_atomic
from kiln.services.controller import HEAL_INTERVAL

CLAIM_INTERVAL = 1.0  # seconds between leadership attempts; failover within about this


def serve(
    state_dir: Path,
    spec: ServiceSpec | None,
    *,
    listen: str | None = None,
    policy: Path | None = None,
    http: str | None = None,
    database: str | None = None,
) -> int:
    """Run the controller in the foreground until SIGTERM/SIGINT. Returns an exit code."""
    run_dir = state_dir / "run"
    _log_to_stderr()
    ensure_local_admin(state_dir)
    ensure_local_reader(state_dir)  # the dashboard's read-only token (kiln dashboard)
    tokens = load_table(state_dir)
    leader = leader_lock(run_dir, spec, database)
    if listen in (None, "unix"):
        sock = socket_path(state_dir)
        if sock.exists():
            if ControllerClient(Address(f"unix:{sock}"), None).alive():
                raise ConfigError(
                    f"a controller is already serving {sock}",
                    hint="stop it first, or use --listen 127.0.0.1:PORT for a second one",
                )
            sock.unlink()
        address = f"unix:{sock}"
        listener = _unix_listener(sock)
        options: dict[str, object] = {"fd": listener.fileno()}
    else:
        host, _, port = listen.rpartition(":")
        if not port.isdigit():
            raise ConfigError(f"--listen {listen!r} is not HOST:PORT")
        address = f"http://{host}:{port}"
        options = {"host": host, "port": int(port)}
    controller = build_controller(
        state_dir,
        spec,
        address=address,
        leader=leader,
        policy=policy or state_dir.parent / "trust.yaml",
        heal_interval=heal_interval(),
        database=database,
    )
    controller.claim_environments()
    stop_claims = threading.Event()

    def keep_claiming() -> None:
        # A follower takes over an environment as soon as its leader's lock drops.
        while not stop_claims.wait(CLAIM_INTERVAL):
            controller.claim_environments()

    threading.Thread(target=keep_claiming, name="leader-claims", daemon=True).start()
    ci_hook = None
    if spec is not None:
        from kiln.bootstrap.webhook import CiHook

        ci_hook = CiHook(state_dir, state_dir.parent / "kiln.yaml")
    app = create_app(controller=controller, tokens=tokens, ci_hook=ci_hook)
    dashboard, dashboard_ledger = dashboard_boot.source(state_dir, controller)
    browser = BrowserListener(app, address=address)
    dashboard_api.configure(app, source=dashboard, open_listener=browser.open)
    if http is not None:
        browser.open(http)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", **options)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    try:
        info = {"pid": os.getpid(), "address": address}
        write_atomic(run_dir / "controller.json", json.dumps(info).encode(), mode=0o600)
        server.run()
    finally:
        stop_claims.set()
        browser.close()
        controller.stop()
        if dashboard_ledger is not None:
            dashboard_ledger.close()
        leader.close()
        with contextlib.suppress(FileNotFoundError):
            (run_dir / "controller.json").unlink()
    return 0


class BrowserListener:
    """The controller's second, loopback HTTP listener, for browsers (the dashboard).

    A browser cannot reach the API's unix socket, so ``kiln dashboard`` asks for
    this one (or ``kiln serve --http HOST:PORT`` opens it at start). It serves the
    same app read-only (GET/HEAD; ``kiln.api.dashboard.read_only``) behind the
    same bearer tokens, in its own thread and event loop, until the controller
    stops. When the API itself is on TCP, that address already serves the page.
    """

    def __init__(self, app: Any, *, address: str) -> None:
        self._app = app
        self._address = address
        self._lock = threading.Lock()
        self._url: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def open(self, where: str = "127.0.0.1:0") -> str:
        """The dashboard's URL, opening the listener on ``where`` the first time."""
        with self._lock:
            if self._url is not None:
                return self._url
            if not self._address.startswith("unix:"):
                self._url = f"{self._address}/ui/"
                return self._url
            host, _, port = where.rpartition(":")
            if not port.isdigit() or not host:
                raise ConfigError(f"--http {where!r} is not HOST:PORT")
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host.strip("[]"), int(port)))
            except OSError as exc:
                sock.close()
                raise ConfigError(f"cannot listen on {where}: {exc.strerror}") from None
            sock.listen(128)
            bound = sock.getsockname()[1]
            config = uvicorn.Config(
                dashboard_api.read_only(self._app), log_level="warning", lifespan="off"
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, name="dashboard-http", daemon=True
            )
            thread.start()
            self._server, self._thread = server, thread
            self._url = f"http://{host}:{bound}/ui/"
            return self._url

    def close(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)


def _unix_listener(path: Path) -> socket.socket:
    """Bind the API socket ourselves so it is 0600 from the first instant
    (uvicorn's own ``uds=`` would chmod it to 0666)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    path.chmod(0o600)
    sock.listen(128)
    return sock


def _log_to_stderr() -> None:
    """kiln's own log lines (leadership terms, a stale leader standing down) on the
    controller's stderr, which is ``.kiln/logs/controller.log`` when started on
    demand. Only the ``kiln`` loggers: the HTTP client logs every router call."""
    logger = logging.getLogger("kiln")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def heal_interval() -> float:
    """Seconds between drift scans: ``KILN_HEAL_INTERVAL`` (default 2)."""
    raw = os.environ.get("KILN_HEAL_INTERVAL")
    if raw is None:
        return HEAL_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 3600:
        raise ConfigError(
            f"KILN_HEAL_INTERVAL={raw!r} is not a number of seconds in 0.1..3600",
            hint="unset it for the default of 2 seconds",
        )
    return value
