"""The controller's HTTP API (FastAPI). Thin: authenticate, call a service, return JSON.

Every route under ``/v1`` needs ``Authorization: Bearer <token>``; the identity it
maps to is the actor recorded for anything the request changes. ``/healthz``
answers only "ok" so supervisors can probe liveness without a credential.
"""

# No `from __future__ import annotations`: FastAPI must evaluate the Annotated
# dependencies below, which refer to closures.
from collections.abc import Mapping
from typing import Annotated, Any, Protocol

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from kiln import __version__
from kiln.api.dashboard import install as install_dashboard
from kiln.core.access import Identity, Role, TokenTable
from kiln.errors import InvalidInput, KilnError, NotFound, Refused, Temporary
from kiln.services.controller import Controller

_STATUS = (
    (NotFound, 404),
    (InvalidInput, 400),
    (Refused, 409),
    (Temporary, 503),
)


def _status_of(exc: KilnError) -> int:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return 422


class CiHook(Protocol):
    def verify(self, headers: Mapping[str, str], body: bytes) -> str: ...
    def trigger(self, source: str, body: bytes) -> dict[str, object]: ...


def create_app(
    *, controller: Controller, tokens: TokenTable, ci_hook: CiHook | None = None
) -> FastAPI:
    app = FastAPI(
        title="kiln controller",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/v1/openapi.json",
    )

    def who(authorization: Annotated[str | None, Header()] = None) -> Identity:
        identity = tokens.authenticate(authorization)
        if identity is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or unknown token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return identity

    def admin(identity: Annotated[Identity, Depends(who)]) -> Identity:
        if identity.role is not Role.ADMIN:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this needs the admin role")
        return identity

    # The dashboard (/ui/, /v1/dashboard) and the security headers on every response.
    install_dashboard(app, who=who, admin=admin, controller=controller)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/whoami")
    def whoami(identity: Annotated[Identity, Depends(who)]) -> dict[str, str]:
        return {"name": identity.name, "role": str(identity.role)}

    @app.get("/v1/status")
    def get_status(identity: Annotated[Identity, Depends(who)]) -> dict[str, Any]:
        return controller.status()

    @app.exception_handler(KilnError)
    async def kiln_error(request: Request, exc: KilnError) -> JSONResponse:
        return JSONResponse(
            status_code=_status_of(exc),
            content={"detail": exc.message, "hint": exc.hint, "kind": type(exc).__name__},
        )

    @app.get("/v1/environments/{name}")
    def get_environment(name: str, identity: Annotated[Identity, Depends(who)]) -> dict[str, Any]:
        for env in controller.status()["environments"]:
            if env["name"] == name:
                return dict(env)
        raise NotFound(f"no environment {name!r}")

    @app.post("/v1/environments/{name}/deploy")
    def deploy(
        name: str,
        identity: Annotated[Identity, Depends(admin)],
        artifact: Annotated[str, Body(embed=True)],
    ) -> dict[str, Any]:
        return controller.deploy(name, artifact, actor=identity.name)

    @app.post("/v1/environments/{name}/promote")
    def promote(name: str, identity: Annotated[Identity, Depends(admin)]) -> dict[str, Any]:
        return controller.promote(name, actor=identity.name)

    @app.post("/v1/environments/{name}/abort")
    def abort(name: str, identity: Annotated[Identity, Depends(admin)]) -> dict[str, Any]:
        return controller.abort(name, actor=identity.name)

    @app.post("/v1/environments/{name}/rollback")
    def rollback(
        name: str,
        identity: Annotated[Identity, Depends(admin)],
        to: Annotated[str | None, Body(embed=True)] = None,
    ) -> dict[str, Any]:
        return controller.rollback(name, to=to, actor=identity.name)

    @app.get("/v1/drift")
    def drift(
        identity: Annotated[Identity, Depends(who)], environment: str | None = None
    ) -> dict[str, Any]:
        return controller.drift(environment)

    @app.post("/v1/reconcile")
    def reconcile(
        identity: Annotated[Identity, Depends(admin)],
        environment: Annotated[str | None, Body(embed=True)] = None,
        dry_run: Annotated[bool, Body(embed=True, alias="dryRun")] = False,
    ) -> dict[str, Any]:
        return controller.reconcile(environment, dry_run=dry_run, actor=identity.name)

    @app.post("/webhooks/ci", status_code=status.HTTP_202_ACCEPTED)
    async def ci_webhook(request: Request) -> dict[str, object]:
        # Outside /v1 on purpose: every /v1 route takes a bearer token, while the CI
        # system proves itself with the body's HMAC signature instead.
        if ci_hook is None:
            raise NotFound("this controller has no CI webhook configured")
        body = await request.body()
        try:
            source = ci_hook.verify(dict(request.headers), body)
        except Refused as exc:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=exc.message) from None
        # The trigger may fetch the pushed commit (git, bounded in time): off the event loop.
        return await run_in_threadpool(ci_hook.trigger, source, body)

    return app
