"""``POST /v1/events``."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Request, Response

from cartlift.serve._deps import IngestKey, ServiceDep
from cartlift.serve._event_body import EVENTS_REQUEST_BODY, read_events
from cartlift.serve._schemas import EventBatchPublic
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
    events = read_events(await request.body(), request.headers.get("content-type"))
    outcome = await service.ingest_events(events=events)
    return Response(msgspec.json.encode(outcome.to_public()), media_type="application/json")
