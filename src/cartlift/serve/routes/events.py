"""``POST /v1/events``."""

from __future__ import annotations

from fastapi import APIRouter

from cartlift.serve._deps import IngestKey, ServiceDep
from cartlift.serve._schemas import EventBatchCreate, EventBatchPublic
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
)
async def post_events(batch: EventBatchCreate, service: ServiceDep, key: IngestKey) -> dict[str, object]:
    """Validate events with the importers' rules and store them; answer once they are durable.

    Every event is accepted, a duplicate (its ``event_id`` is already stored: posting a batch twice
    stores it once) or rejected with its reason (and kept in the quarantine). A malformed body
    (422) or an oversized one (413) stores nothing.
    """
    outcome = await service.ingest_events(events=[e.model_dump() for e in batch.events])
    return outcome.to_public()
