"""``POST /v1/events``."""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Request, Response

from cartlift.serve._deps import IngestKey, ServiceDep
from cartlift.serve._intake import EVENTS_REQUEST_BODY, read_events
from cartlift.serve._schemas import EventBatchPublic
from cartlift.serve.routes._common import errors

router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/events",
    response_model=EventBatchPublic,
    responses=errors(400, 401, 403, 413, 422, 429, 503),
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
