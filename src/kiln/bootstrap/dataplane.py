"""Each environment's data plane: find its router, or start one that outlives us.

The embedded router runs as its own process (``kiln router --env NAME``), started
detached so traffic keeps flowing when the controller or the CLI exits. Its
admin socket is ``run/router-<env>.sock`` and its last table
``run/router-<env>.json``. The listener address is fixed the first time: when the
spec asks for port 0, kiln picks a free loopback port once and records it in
``run/router-<env>.addr``, so the environment's URL does not move on restarts.

An environment with ``router: {kind: haproxy}`` gets one HAProxy instead, also
detached, from a config kiln generates (``run/haproxy-<env>.cfg``: a frontend on
the same fixed address, one dynamic backend, the runtime API socket
``run/haproxy-<env>.sock`` mode 0600). It is driven only through that socket by
the HAProxy adapter, never reloaded; its last table is ``run/haproxy-<env>.json``.
A controller that finds the socket answering adopts the running HAProxy; one it
starts fresh is given the persisted table at once. HAProxy writes one line per
request to the named pipe ``run/haproxy-<env>.log`` (kept open by HAProxy, so
lines wait there while no controller reads); the controller's
``SupervisedHAProxy`` reads it into per-release latency histograms and keeps its
counts in ``run/haproxy-<env>.counts.json`` (see ``haproxy_metrics``). A
blue/green ``previewPort`` becomes a second frontend in that config (HAProxy
opens ports only at start), so changing the port needs `kiln down` and a new
start; the embedded router opens and closes its preview listener per table.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
from kiln.adapters.traffic.haproxy import HAProxyRouter, PreviewRoute, RuntimeAPI, base_config
from kiln.adapters.traffic.haproxy_metrics import LOG_FD, CountBook, LatencyLog
from kiln.adapters.traffic.haproxy_rules import RuleMaps
from kiln.adapters.traffic.haproxy_runtime import with_log_fifo
from kiln.bootstrap.detach import spawn_detached
from kiln.core.spec.models import BlueGreen, Environment, HAProxySettings, RouterKind
from kiln.core.traffic.metrics import DataPlaneHealth, RouterMetrics
from kiln.core.traffic.table import RouteTable
from kiln.errors import ConfigError, InvalidInput, Temporary
from kiln.fsio import write_atomic
from kiln.ports.traffic import Router

START_TIMEOUT = 30.0
_T = TypeVar("_T")


def _run(state_dir: Path) -> Path:
    return state_dir / "run"


def admin_socket(state_dir: Path, environment: str) -> Path:
    return _run(state_dir) / f"router-{environment}.sock"


def haproxy_socket(state_dir: Path, environment: str) -> Path:
    """HAProxy's runtime API (``stats socket ... mode 600 level admin``)."""
    return _run(state_dir) / f"haproxy-{environment}.sock"


def haproxy_log_fifo(state_dir: Path, environment: str) -> Path:
    """The named pipe HAProxy writes its request log to (``log fd@9``)."""
    return _run(state_dir).resolve() / f"haproxy-{environment}.log"


def haproxy_counts(state_dir: Path, environment: str) -> Path:
    """The HAProxy router's ``CountBook``: counts of deleted servers, histograms."""
    return _run(state_dir).resolve() / f"haproxy-{environment}.counts.json"


def haproxy_rule_maps(state_dir: Path, environment: str) -> RuleMaps:
    """The runtime maps of the HAProxy's header/cookie rules and sticky cookie
    (``haproxy_rules``): ``run/haproxy-<env>.{rules,sticky,servers}.map``."""
    return RuleMaps.beside(_run(state_dir).resolve() / f"haproxy-{environment}")


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
    for env in envs:
        if env.router.kind is RouterKind.HAPROXY and not _accepts(
            haproxy_socket(state_dir, env.name)
        ):
            _start_haproxy(state_dir, env)
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
    if env.router.kind is RouterKind.EMBEDDED:
        start_routers(state_dir, [env])
        return EmbeddedRouterClient(socket_path=admin_socket(state_dir, env.name))
    if env.router.kind is RouterKind.HAPROXY:
        start_routers(state_dir, [env])
        return SupervisedHAProxy(state_dir, env)
    raise ConfigError(
        f"environment {env.name}: router kind {env.router.kind} is not wired into the "
        "controller yet",
        hint="use router: {kind: embedded} or {kind: haproxy}",
    )


def preview_header(env: Environment) -> str:
    """The header a blue/green preview is reached by (the default when not blue/green)."""
    blue_green = env.strategy.blue_green or BlueGreen()
    return blue_green.preview_header


class SupervisedHAProxy:
    """The environment's ``HAProxyRouter``, which starts HAProxy again when its runtime
    API is gone (killed, crashed): the next call — the heal loop's scan at the
    latest — restarts it from the generated config and restores the persisted table,
    then retries once. Implements ``Router`` and ``LiveView``.

    It owns the environment's ``CountBook`` (written only here) and the reader of
    HAProxy's request log, started by the first metrics read: only a controller
    that analyses reads the pipe, and its lock file keeps a second one out."""

    def __init__(self, state_dir: Path, env: Environment) -> None:
        self._state_dir = state_dir
        self._env = env
        book = CountBook(haproxy_counts(state_dir, env.name))
        self.router = haproxy_router(
            state_dir,
            env.name,
            preview_header(env),
            preview_port(env),
            book=book,
            log=LatencyLog(haproxy_log_fifo(state_dir, env.name), book),
        )

    def _revived(self, call: Callable[[HAProxyRouter], _T]) -> _T:
        try:
            return call(self.router)
        except Temporary:
            if _answers(self.router.api):
                raise  # HAProxy runs: a passing hiccup, for the caller to retry
            start_routers(self._state_dir, [self._env])
            return call(self.router)

    def apply(self, table: RouteTable) -> int:
        return self._revived(lambda r: r.apply(table))

    def current(self) -> RouteTable | None:
        return self.router.current()

    def metrics(self) -> RouterMetrics:
        return self._revived(HAProxyRouter.metrics)

    def health(self) -> DataPlaneHealth:
        return self._revived(HAProxyRouter.health)

    def differences(self) -> list[str]:
        return self._revived(HAProxyRouter.differences)


def preview_port(env: Environment) -> int | None:
    """The blue/green preview port, if the environment has one."""
    blue_green = env.strategy.blue_green
    return blue_green.preview_port if blue_green is not None else None


def preview_url(state_dir: Path, env: Environment) -> str | None:
    """Where the preview listener answers while a preview is open: the router's host."""
    port = preview_port(env)
    if port is None:
        return None
    return f"http://{listen_address(state_dir, env).rpartition(':')[0]}:{port}"


def _preview_route(
    state_dir: Path, environment: str, header: str, port: int | None = None
) -> PreviewRoute:
    values = _run(state_dir).resolve() / f"haproxy-{environment}.preview"
    return PreviewRoute(header, values, port)


def haproxy_router(
    state_dir: Path,
    environment: str,
    header: str = BlueGreen().preview_header,
    port: int | None = None,
    *,
    book: CountBook | None = None,
    log: LatencyLog | None = None,
) -> HAProxyRouter:
    """The environment's HAProxy router. Without ``book`` it reads the controller's
    counts file and never writes it (for tools and tests beside a controller)."""
    return HAProxyRouter(
        api=RuntimeAPI(haproxy_socket(state_dir, environment)),
        environment=environment,
        state_file=_run(state_dir).resolve() / f"haproxy-{environment}.json",
        preview=_preview_route(state_dir, environment, header, port),
        book=book or CountBook(haproxy_counts(state_dir, environment), writable=False),
        log=log,
        rules=haproxy_rule_maps(state_dir, environment),
    )


def haproxy_binary(env: Environment) -> str:
    """The haproxy executable: ``router.haproxy.binary`` or ``haproxy`` on PATH."""
    settings = env.router.haproxy or HAProxySettings()
    if settings.binary is not None:
        path = Path(settings.binary)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError(
                f"environment {env.name}: router.haproxy.binary {settings.binary} "
                "is not an executable file",
                hint="give the path of haproxy, or remove the field to use haproxy on PATH",
            )
        return str(path)
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise ConfigError(
            f"environment {env.name} has router kind haproxy, but haproxy is not installed",
            hint="install it (apt-get install haproxy) or set router.haproxy.binary",
        )
    return found


def _start_haproxy(state_dir: Path, env: Environment) -> None:
    """Start the environment's HAProxy detached, wait for its runtime API, restore its table."""
    run = _run(state_dir).resolve()
    sock = haproxy_socket(state_dir, env.name).resolve()
    config = run / f"haproxy-{env.name}.cfg"
    log = state_dir.resolve() / "logs" / f"haproxy-{env.name}.log"
    settings = env.router.haproxy or HAProxySettings()
    binary = haproxy_binary(env)
    preview = _preview_route(state_dir, env.name, preview_header(env), preview_port(env))
    try:
        text = base_config(
            env.name,
            listen_address(state_dir, env),
            sock,
            threads=settings.threads,
            preview=preview,
            log_fd=LOG_FD,
            rules=haproxy_rule_maps(state_dir, env.name),
        )
    except InvalidInput as exc:
        raise ConfigError(
            f"environment {env.name}: strategy.blueGreen.previewHeader: {exc.message}",
            hint="a header name is letters, digits and -, e.g. x-kiln-preview",
        ) from exc
    for values in (preview.values, *haproxy_rule_maps(state_dir, env.name).files()):
        write_atomic(values, b"", mode=0o600)  # HAProxy reads them at start
    write_atomic(config, text.encode(), mode=0o600)
    check = subprocess.run(  # noqa: S603 - the configured haproxy, our own config
        [binary, "-c", "-q", "-f", str(config)],
        capture_output=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check.returncode != 0:
        raise ConfigError(
            f"HAProxy rejects the config kiln generated for {env.name}: "
            + _alerts(check.stdout + check.stderr),
            hint=f"the config is {config}; check router.listen and router.haproxy",
        )
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    command = with_log_fifo(
        haproxy_log_fifo(state_dir, env.name), [binary, "-db", "-f", str(config)]
    )
    spawn_detached(command, log)
    deadline = time.monotonic() + START_TIMEOUT
    # Ready when the runtime API answers: HAProxy serves it only once every listener
    # is bound (the socket alone may accept for a moment before a failed bind exits).
    while not _answers(RuntimeAPI(sock, timeout=1.0)):
        failed = _alerts(log.read_bytes()[offset:]) if log.exists() else ""
        if failed or time.monotonic() > deadline:
            raise Temporary(
                f"the HAProxy of {env.name} did not start: "
                + (failed or f"no runtime API within {START_TIMEOUT:g}s"),
                hint=f"see {log}; is {listen_address(state_dir, env)} taken by another process?",
            )
        time.sleep(0.05)
    haproxy_router(state_dir, env.name, preview.header, preview.port).restore()


def _answers(api: RuntimeAPI) -> bool:
    try:
        return "Name: HAProxy" in api.command("show info")
    except Temporary:
        return False


def _alerts(output: bytes) -> str:
    """HAProxy's ALERT lines, without their prefixes, as one line."""
    lines = [
        line.split(":", 1)[-1].strip() if "]" in line else line.strip()
        for line in output.decode(errors="replace").splitlines()
        if "[ALERT]" in line
    ]
    return "; ".join(lines)


def _start(state_dir: Path, env: Environment) -> None:
    log = state_dir / "logs" / f"router-{env.name}.log"
    command = [
        sys.executable, "-m", "kiln", "--state-dir", str(state_dir),
        "router", "--env", env.name, "--listen", listen_address(state_dir, env),
    ]  # fmt: skip
    spawn_detached(command, log)
