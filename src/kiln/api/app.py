"""The controller's HTTP API (FastAPI). Thin: authenticate, call a service, return JSON.

Every route under ``/v1`` needs ``Authorization: Bearer <token>``; the identity it
maps to is the actor recorded for anything the request changes. ``/healthz``
answers only "ok" so supervisors can probe liveness without a credential.
"""

# No `from __future__ import annotations`: FastAPI must evaluate the Annotated
# dependencies below, which refer to closures.
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, status

from kiln import __version__
from kiln.core.access import Identity, Role, TokenTable
from kiln.services.controller import Controller


def create_app(*, controller: Controller, tokens: TokenTable) -> FastAPI:
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

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/whoami")
    def whoami(identity: Annotated[Identity, Depends(who)]) -> dict[str, str]:
        return {"name": identity.name, "role": str(identity.role)}

    @app.get("/v1/status")
    def get_status(identity: Annotated[Identity, Depends(who)]) -> dict[str, Any]:
        return controller.status()

    _ = admin  # used by the mutating routes of the rollout API (issue 7)
    return app
