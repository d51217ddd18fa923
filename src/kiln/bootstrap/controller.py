"""Starting, finding and talking to the controller.

- ``kiln.api.server.serve`` runs it (API on a unix socket, 0600, in the 0700
  ``run/`` directory, or on loopback TCP; both behind bearer tokens).
- ``ensure_running`` is what the CLI calls: use ``KILN_CONTROLLER``/settings if
  given, else the local socket if it answers, else start a local controller in the
  background and wait for it, so a new user's first command just works.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kiln.adapters.keys.tokens import read_local_token
from kiln.bootstrap.detach import spawn_detached
from kiln.errors import ConfigError, InvalidInput, KilnError, NotFound, Refused, Temporary

START_TIMEOUT = 60.0  # generous: a loaded 2-core CI box can take 20 s to import and wire


def socket_path(state_dir: Path) -> Path:
    return state_dir / "run" / "controller.sock"


@dataclass(frozen=True)
class Address:
    """``unix:/path/to/sock`` or ``http://127.0.0.1:PORT``."""

    raw: str

    @property
    def is_unix(self) -> bool:
        return self.raw.startswith("unix:")

    @property
    def base_url(self) -> str:
        return "http://kiln" if self.is_unix else self.raw.rstrip("/")

    def transport(self) -> httpx.HTTPTransport:
        if self.is_unix:
            return httpx.HTTPTransport(uds=self.raw.removeprefix("unix:"))
        return httpx.HTTPTransport()

    @classmethod
    def parse(cls, raw: str) -> Address:
        if raw.startswith("unix:") or raw.startswith(
            ("http://127.", "http://localhost", "http://[::1]")
        ):
            return cls(raw)
        if raw.startswith("http://") or raw.startswith("https://"):
            return cls(raw)
        raise ConfigError(
            f"controller address {raw!r} is not unix:PATH or http(s)://HOST:PORT",
            hint="set KILN_CONTROLLER=unix:/path/to/controller.sock or http://127.0.0.1:PORT",
        )


class ControllerClient:
    def __init__(self, address: Address, token: str | None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.address = address
        self._http = httpx.Client(
            transport=address.transport(),
            base_url=address.base_url,
            headers=headers,
            timeout=timeout,
        )

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise Temporary(
                f"cannot reach the controller at {self.address.raw}: {exc}",
                hint="is `kiln serve` running? check .kiln/logs/controller.log",
            ) from None
        if response.status_code == 401:
            raise ConfigError(
                "the controller refused our token",
                hint="set KILN_TOKEN, or use the local token in .kiln/run/controller.token",
            )
        if response.status_code >= 400:
            raise _error_of(response)
        return response.json()

    def alive(self) -> bool:
        if self.address.is_unix and not _accepts(self.address.raw.removeprefix("unix:")):
            return False  # checked with a plain socket: httpx leaks one per refused connect
        try:
            return self._http.get("/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        self._http.close()


_ERRORS: dict[str, type[KilnError]] = {
    "NotFound": NotFound,
    "Refused": Refused,
    "IntegrityError": Refused,
    "InvalidInput": InvalidInput,
    "SpecError": InvalidInput,
    "ConfigError": InvalidInput,
    "Temporary": Temporary,
}


def _error_of(response: httpx.Response) -> KilnError:
    """The controller's error as the same kind of KilnError, so exit codes match."""
    try:
        payload = response.json()
    except ValueError:
        payload = {"detail": response.text}
    detail = payload.get("detail", response.text)
    if not isinstance(detail, str):  # FastAPI validation errors are lists
        detail = f"invalid request: {detail}"
    kind = _ERRORS.get(str(payload.get("kind", "")), Refused)
    if kind is Temporary:
        return Temporary(detail, hint=str(payload.get("hint", "")))
    return kind(detail, hint=str(payload.get("hint", "")))


def _accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def connect(state_dir: Path, configured: str | None, *, start: bool = True) -> ControllerClient:
    token = os.environ.get("KILN_TOKEN") or read_local_token(state_dir)
    if configured:
        return ControllerClient(Address.parse(configured), token)
    address = Address(f"unix:{socket_path(state_dir)}")
    client = ControllerClient(address, token)
    if client.alive():
        return client
    if not start:
        raise Temporary("no controller is running", hint="start one with `kiln serve`")
    client.close()
    _start_background(state_dir)
    probe = ControllerClient(address, None)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if probe.alive():
                # The token exists once the API answers: the controller writes it first.
                return ControllerClient(
                    address, os.environ.get("KILN_TOKEN") or read_local_token(state_dir)
                )
            time.sleep(0.05)
    finally:
        probe.close()
    raise Temporary(
        f"the local controller did not start within {START_TIMEOUT:g}s",
        hint=f"see {state_dir / 'logs' / 'controller.log'}",
    )


def _start_background(state_dir: Path) -> None:
    """Start ``kiln serve`` detached: through a short-lived intermediate process, so
    the controller is re-parented to init and never becomes our zombie."""
    log_path = state_dir / "logs" / "controller.log"
    command = [sys.executable, "-m", "kiln", "--state-dir", str(state_dir), "serve"]
    spawn_detached(command, log_path)


def stop(state_dir: Path, *, timeout: float = 10.0) -> bool:
    """Stop the local controller by the PID it recorded; True if one was stopped."""
    info_path = state_dir / "run" / "controller.json"
    try:
        pid = int(json.loads(info_path.read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
