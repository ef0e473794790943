"""``POST /v1/events``: the route, and its shortcut in front of the framework (`post_events_directly`)."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from cartlift.serve._deps import EventIntake, IngestKey, ServiceDep, authorize, running_intake
from cartlift.serve._event_body import EVENTS_REQUEST_BODY, read_events
from cartlift.serve._limits import BodyLimit
from cartlift.serve._schemas import EventBatchPublic
from cartlift.serve._shortcuts import answer_directly
from cartlift.serve.routes._common import errors

router = APIRouter(prefix="/v1", tags=["events"])

_FIRST = "$request.body#/events/0"
_LINKS = {
    "CartRisk": {"operationId": "cart_risk", "parameters": {"session_id": f"{_FIRST}/session_id"}},
    "Decide": {"operationId": "decide", "parameters": {"session_id": f"{_FIRST}/session_id"}},
    "Assignment": {"operationId": "assignment", "parameters": {"unit": f"{_FIRST}/user_id"}},
    "EraseUser": {"operationId": "erase_user", "parameters": {"user_id": f"{_FIRST}/user_id"}},
}
"""OpenAPI links: what a client (and a stateful API tester) can ask next about the events it posted."""


@router.post(
    "/events",
    response_model=EventBatchPublic,
    responses={**errors(401, 403, 413, 422, 429, 503), 200: {"links": _LINKS}},
    summary="Store a batch of events",
    openapi_extra={"requestBody": EVENTS_REQUEST_BODY},
)
async def post_events(request: Request, service: ServiceDep, key: IngestKey) -> Response:
    """Validate events with the importers' rules and store them; answer once they are durable.

    The body is an `EventBatchCreate`. Every event is accepted, a duplicate (its ``event_id`` is
    already stored: posting a batch twice stores it once) or rejected with its reason (and kept in
    the quarantine). A malformed body (400, 422) or an oversized one (413) stores nothing.
    """
    return await _store(service, await request.body(), request.headers.get("content-type"))


async def _store(service: EventIntake, body: bytes, content_type: str | None) -> Response:
    events = read_events(body, content_type)
    outcome = await service.ingest_events(events=events)
    return Response(msgspec.json.encode(outcome.to_public()), media_type="application/json")


async def post_events_directly(
    app: FastAPI, limit: BodyLimit, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer ``POST /v1/events`` as the route does, in front of the framework (`answer_directly`).

    The same steps in the route's order: the body limit on ``Content-Length`` (`BodyLimit`, as
    the middleware applies it), `authorize`, the body read under the limit, `_store`.
    """

    refused = limit.declared_too_large(scope)

    async def respond(request: Request) -> Response:
        if refused:
            raise HTTPException(413, limit.message())
        await authorize(request, "ingest")
        return await _store(
            running_intake(request), await request.body(), request.headers.get("content-type")
        )

    # a body refused by its Content-Length never reaches the router: the metrics middleware counts it "unmatched"
    route = "unmatched" if refused else "/v1/events"
    await answer_directly(app, scope, limit.counted(receive), send, route=route, respond=respond)
