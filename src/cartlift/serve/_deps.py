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
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from cartlift.serve._errors import ApiError
from cartlift.serve._keys import ApiKey
from cartlift.serve._service import Service
from cartlift.store import IngestOutcome

__all__ = [
    "AdminKey",
    "EventIntake",
    "IngestKey",
    "ReadKey",
    "ServiceDep",
    "authorize",
    "running_intake",
    "running_service",
]


class EventIntake(Protocol):
    """What answering ``POST /v1/events`` needs of an app's service: a `Service`, or the intake
    front process's (`cartlift.serve._front`)."""

    started: bool

    async def authenticate(self, *, token: str | None, scope: str) -> ApiKey: ...

    async def ingest_events(self, *, events: list[dict[str, Any]]) -> IngestOutcome: ...


def running_intake(request: Request) -> EventIntake:
    """The app's service as far as event posts need it; 503 while it starts or stops."""
    service: EventIntake | None = getattr(request.app.state, "service", None)
    if service is None or not service.started:
        raise ApiError(503, "The service is starting or stopping; retry in a moment.")
    return service


def running_service(request: Request) -> Service:
    """The app's service; 503 while it starts or stops."""
    service = running_intake(request)
    assert isinstance(service, Service)  # only the front process's app holds another kind
    return service


async def get_service(request: Request) -> Service:
    """The running service."""
    return running_service(request)


ServiceDep = Annotated[Service, Depends(get_service)]


async def authorize(request: Request, scope: str) -> ApiKey:
    """The key of the request's ``Authorization: Bearer KEY``, checked for ``scope`` and rate limit."""
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    return await running_intake(request).authenticate(
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
