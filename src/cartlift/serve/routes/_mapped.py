"""Store what an integration mapped: events through the one intake path, then identities."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from cartlift.integrations import Mapped
from cartlift.serve._errors import ApiError
from cartlift.serve._service import Service

__all__ = ["read_json", "store_mapped"]


async def read_json(request: Request) -> Any:
    """The request body as JSON; 422 with the reason when it is not."""
    body = await request.body()
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(422, f"The body is not JSON ({e}); nothing was stored.") from None


async def store_mapped(service: Service, mapped: Mapped) -> dict[str, Any]:
    """Events first (the same validation, id rule and quarantine as ``POST /v1/events``), then identities.

    Identities come after the events, so an identify that closes a batch joins the batch's own
    anonymous events too. The answer is ``POST /v1/events``'s, plus ``identities``,
    ``events_joined`` and the ``ignored`` messages with their reason.
    """
    answer: dict[str, Any] = {
        "accepted": 0,
        "duplicates": 0,
        "rejected": 0,
        "errors": [],
        "duplicate_ids": [],
    }
    if mapped.events:
        answer = (await service.ingest_events(events=mapped.events)).to_public()
    joined = await service.intake.store_identities(identities=mapped.identities, user=service.user)
    return {**answer, **joined, "ignored": mapped.ignored}
