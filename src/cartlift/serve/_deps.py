"""Dependencies of the routes, as ``Annotated`` aliases (the FastAPI full-stack template's ``deps.py``).

Each is one plain ``async`` function of the request: FastAPI resolves every dependency and
sub-dependency per request, and on the hot routes that resolution costs more than the work
(``def`` dependencies would also cost a thread-pool hop each). The bearer scheme is declared in
the OpenAPI document by `_app.openapi_with_security`.

`running_service` and `authorize` are the same checks as plain functions, for a route that runs
them itself (the recommendations shortcut).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from cartlift.serve._errors import ApiError
from cartlift.serve._keys import ApiKey
from cartlift.serve._service import Service

__all__ = ["AdminKey", "IngestKey", "ReadKey", "ServiceDep", "authorize", "running_service"]


def running_service(request: Request) -> Service:
    """The app's service; 503 while it starts or stops."""
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None or not service.started:
        raise ApiError(503, "The service is starting or stopping; retry in a moment.")
    return service


async def get_service(request: Request) -> Service:
    """The running service."""
    return running_service(request)


ServiceDep = Annotated[Service, Depends(get_service)]


async def authorize(request: Request, scope: str) -> ApiKey:
    """The key of the request's ``Authorization: Bearer KEY``, checked for ``scope`` and rate limit."""
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    return await running_service(request).authenticate(
        token=token.strip() if kind.lower() == "bearer" else None, scope=scope
    )


def _require(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    async def check(request: Request) -> ApiKey:
        return await authorize(request, scope)

    check.__name__ = f"require_{scope}"
    return check


require_ingest = _require("ingest")
require_read = _require("read")
require_admin = _require("admin")

IngestKey = Annotated[ApiKey, Depends(require_ingest)]
ReadKey = Annotated[ApiKey, Depends(require_read)]
AdminKey = Annotated[ApiKey, Depends(require_admin)]
