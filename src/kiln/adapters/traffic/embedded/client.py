"""The ``Router`` port over the embedded router's admin socket.

The controller holds one of these per environment; it never touches the data
plane's sockets itself. Transport errors become ``Temporary`` (the router may be
restarting; its persisted table keeps serving meanwhile), HTTP answers map to
kiln errors: 409 ``Refused`` (older generation), 400 ``InvalidInput``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from kiln.core.traffic.metrics import (
    DataPlaneHealth,
    RouterMetrics,
    health_from_dict,
    metrics_from_dict,
)
from kiln.core.traffic.table import RouteTable, from_json
from kiln.errors import InvalidInput, KilnError, Refused, Temporary


class EmbeddedRouterClient:
    def __init__(self, *, socket_path: Path, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket_path)),
            base_url="http://kiln-router",
            timeout=timeout,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EmbeddedRouterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        if not self.socket_path.exists():
            # Checked here because httpcore leaks the socket of a failed unix connect.
            raise Temporary(
                f"the router admin socket {self.socket_path} does not answer: it does not exist",
                delay=0.5,
                hint="is `kiln router` running? Its last table keeps serving meanwhile",
            )
        try:
            response = self._client.request(method, path, content=body)
        except httpx.HTTPError as exc:
            raise Temporary(
                f"the router admin socket {self.socket_path} does not answer: {exc}",
                delay=0.5,
                hint="is `kiln router` running? Its last table keeps serving meanwhile",
            ) from exc
        if response.status_code >= 400 and response.status_code != 404:
            message, hint = _error_of(response)
            if response.status_code == 409:
                raise Refused(message, hint=hint)
            if response.status_code == 400:
                raise InvalidInput(message, hint=hint)
            raise Temporary(f"router answered {response.status_code}: {message}", hint=hint)
        return response

    def apply(self, table: RouteTable) -> int:
        response = self._call("PUT", "/table", table.to_json())
        return int(_json(response)["generation"])

    def current(self) -> RouteTable | None:
        response = self._call("GET", "/table")
        if response.status_code == 404:
            return None
        return from_json(response.content)

    def metrics(self) -> RouterMetrics:
        return metrics_from_dict(_json(self._call("GET", "/metrics.json")))

    def prometheus_text(self) -> str:
        return self._call("GET", "/metrics").text

    def health(self) -> DataPlaneHealth:
        return health_from_dict(_json(self._call("GET", "/health")))

    def drain(self) -> int:
        """Stop the data listener and wait for in-flight requests; returns unfinished."""
        return int(_json(self._call("POST", "/drain"))["unfinished"])


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KilnError(f"router answered non-JSON: {exc}") from exc


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        err = response.json()["error"]
        return str(err.get("message", "")), str(err.get("hint", ""))
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:200], ""
