"""The dashboard's routes: the static page under ``/ui/`` and its data at ``/v1/dashboard``.

- ``GET /ui/`` (and its two assets) needs no token and holds no data: it is the
  same few files for everyone, shipped as package data (no build step, no CDN).
- ``GET /v1/dashboard`` (read role) is the one JSON document the page polls
  (``kiln.services.dashboard``).
- ``POST /v1/dashboard/listener`` (admin) opens the controller's loopback HTTP
  listener for browsers when the API itself is on a unix socket; it answers
  the page's URL (never a token).

Every response of the app carries the security headers below: a CSP that allows
only this origin's own files (no inline script or style, no framing), no
sniffing, no referrer.
"""

# No `from __future__ import annotations`: FastAPI evaluates the dependencies.
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import MutableHeaders

from kiln.core.access import Identity
from kiln.errors import NotFound, Refused
from kiln.services.controller import Controller
from kiln.services.dashboard import Dashboard

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),  # frame-ancestors for browsers that predate CSP 2
    ("cross-origin-opener-policy", "same-origin"),
)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Hooks:
    """What the routes call; ``kiln.api.server`` replaces the defaults with the
    controller's full data source and its listener."""

    source: Dashboard
    open_listener: Callable[[], str] | None = None


class SecurityHeaders:
    """ASGI middleware adding ``SECURITY_HEADERS`` to every HTTP response, and
    ``Cache-Control: no-store`` to API answers (they are live and per-identity)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith("/v1/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
                headers["cache-control"] = "no-store" if api else "no-cache"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def read_only(app: ASGIApp) -> ASGIApp:
    """The app as the browser listener serves it: GET and HEAD only, so nothing
    reached through it can change state, whatever token it carries."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in {"GET", "HEAD"}:
            response = Response(
                '{"detail": "the dashboard listener is read-only", "kind": "Refused"}',
                status_code=405,
                media_type="application/json",
                headers={"allow": "GET, HEAD"},
            )
            await SecurityHeaders(response)(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


def _asset(name: str) -> bytes:
    return (resources.files("kiln.api") / "ui" / name).read_bytes()


def install(
    app: FastAPI,
    *,
    who: Callable[..., Identity],
    admin: Callable[..., Identity],
    controller: Controller,
) -> None:
    """Add the dashboard's routes and the security headers to the controller's app."""
    app.state.dashboard = Hooks(
        source=Dashboard.status_only(
            controller.status,
            desired=controller.desired,
            clock=controller.clock,
            why="this app has no ledger wired",
        )
    )
    app.add_middleware(SecurityHeaders)

    @app.get("/ui", include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=308)

    @app.get("/ui/", include_in_schema=False)
    def ui_index() -> Response:
        return Response(_asset("index.html"), media_type=ASSETS["index.html"])

    @app.get("/ui/{name}", include_in_schema=False)
    def ui_asset(name: str) -> Response:
        if name not in ASSETS:
            raise NotFound(f"no dashboard file {name!r}")
        return Response(_asset(name), media_type=ASSETS[name])

    @app.get("/v1/dashboard", dependencies=[Depends(who)])
    def dashboard(request: Request) -> dict[str, Any]:
        hooks: Hooks = request.app.state.dashboard
        return hooks.source.snapshot()

    @app.post("/v1/dashboard/listener", dependencies=[Depends(admin)])
    def dashboard_listener(request: Request) -> dict[str, str]:
        hooks: Hooks = request.app.state.dashboard
        if hooks.open_listener is None:
            raise Refused(
                "this controller cannot open a dashboard listener",
                hint="run `kiln serve --http 127.0.0.1:0`, or reach it over TCP",
            )
        return {"url": hooks.open_listener()}


def configure(app: FastAPI, *, source: Dashboard, open_listener: Callable[[], str]) -> None:
    """Give the routes the controller's full data source and its listener."""
    app.state.dashboard = Hooks(source=source, open_listener=open_listener)
