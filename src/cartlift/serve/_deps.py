"""Dependencies of the routes, as ``Annotated`` aliases (the FastAPI full-stack template's ``deps.py``).

Each is one plain ``async`` function of the request: FastAPI resolves every dependency and
sub-dependency per request, and on the hot routes that resolution costs more than the work.
The bearer scheme is declared in the OpenAPI document by `_app.openapi_with_security`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from cartlift.serve._errors import ApiError
from cartlift.serve._keys import ApiKey
from cartlift.serve._service import Service

__all__ = ["AdminKey", "IngestKey", "ReadKey", "ServiceDep"]


def _service(request: Request) -> Service:
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None or not service.started:
        raise ApiError(503, "The service is starting or stopping; retry in a moment.")
    return service


async def get_service(request: Request) -> Service:
    """The running service."""
    return _service(request)


ServiceDep = Annotated[Service, Depends(get_service)]


def _require(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    async def check(request: Request) -> ApiKey:
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        return await _service(request).authenticate(
            token=token.strip() if kind.lower() == "bearer" else None, scope=scope
        )

    check.__name__ = f"require_{scope}"
    return check


IngestKey = Annotated[ApiKey, Depends(_require("ingest"))]
ReadKey = Annotated[ApiKey, Depends(_require("read"))]
AdminKey = Annotated[ApiKey, Depends(_require("admin"))]
