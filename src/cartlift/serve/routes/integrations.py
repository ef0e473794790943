"""``POST /v1/integrations/segment`` (Segment and RudderStack) and ``POST /v1/integrations/shopify``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from cartlift.errors import PayloadError
from cartlift.integrations import segment_records, shopify_records, verify_shopify
from cartlift.serve._deps import IngestKey, ServiceDep
from cartlift.serve._errors import ApiError
from cartlift.serve.routes._common import errors
from cartlift.serve.routes._mapped import read_json, store_mapped

router = APIRouter(prefix="/v1/integrations", tags=["integrations"])


@router.post(
    "/segment",
    responses=errors(401, 403, 413, 422, 429, 503),
    summary="Receive Segment or RudderStack webhook messages",
)
async def post_segment(request: Request, service: ServiceDep, key: IngestKey) -> dict[str, Any]:
    """Map Segment/RudderStack messages (track, identify, page, alias; e-commerce spec v2) to events and identities.

    Configure the tool's webhook destination with this URL and a custom header
    ``Authorization: Bearer KEY`` (an ``ingest`` key). One message, a list of them or
    ``{"batch": [...]}`` per request. A payload that is not shaped as the spec says is refused
    with 422 and the reason, and nothing is stored; a redelivered message is stored once
    (its ``messageId`` is the event id).
    """
    try:
        mapped = segment_records(await read_json(request))
    except PayloadError as e:
        raise ApiError(422, f"{e} Nothing was stored.") from None
    return await store_mapped(service, mapped)


@router.post(
    "/shopify",
    responses=errors(401, 413, 422, 503),
    summary="Receive Shopify webhooks (checkouts, orders, customers)",
)
async def post_shopify(
    request: Request,
    service: ServiceDep,
    x_shopify_topic: Annotated[str | None, Header()] = None,
    x_shopify_hmac_sha256: Annotated[str | None, Header()] = None,
    x_shopify_webhook_id: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Verify a Shopify webhook's signature and map it to events and identities with consent.

    Topics: checkouts/create, checkouts/update, orders/create, customers/create, customers/update.
    The signature is the base64 HMAC-SHA256 of the raw body with ``CARTLIFT_SERVE_SHOPIFY_SECRET``;
    a wrong or missing one gets 401 and nothing is stored. A webhook id seen before is answered
    ``{"duplicate": true}`` without storing anything again.
    """
    secret = service.settings.shopify_secret
    if secret is None:
        raise ApiError(
            401,
            "Shopify webhooks are not set up here: set CARTLIFT_SERVE_SHOPIFY_SECRET to the app's webhook secret.",
        )
    body = await request.body()
    if not verify_shopify(body, x_shopify_hmac_sha256, secret.get_secret_value()):
        raise ApiError(
            401, "The X-Shopify-Hmac-Sha256 signature does not match the body; nothing was stored."
        )
    if x_shopify_webhook_id and await service.intake.seen_webhook(
        source="shopify", webhook_id=x_shopify_webhook_id
    ):
        return {"duplicate": True, "accepted": 0, "duplicates": 0, "rejected": 0, "identities": 0}
    try:
        payload = json.loads(body)
        mapped = shopify_records(x_shopify_topic or "", payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(422, f"The body is not JSON ({e}); nothing was stored.") from None
    except PayloadError as e:
        raise ApiError(422, f"{e} Nothing was stored.") from None
    answer = await store_mapped(service, mapped)
    if x_shopify_webhook_id:
        await service.intake.record_webhook(
            source="shopify", webhook_id=x_shopify_webhook_id, topic=x_shopify_topic
        )
    return {"duplicate": False, **answer}
