"""The storefront tracker: ``GET /v1/tracker.js``, ``POST /v1/track``, ``GET /v1/track/restore``.

A ``track`` key is publishable: it sits in the shop's pages, so what it may do is small. It may
only post tracker batches and restore a cart, only from the page origins it was created with
(the browser's ``Origin`` header; answered with CORS headers for that origin alone), and it is
rate limited like every key. ``navigator.sendBeacon`` cannot send headers, so the key travels
in the ``key`` query parameter; the batch is sent as ``text/plain``, a request browsers make
without a CORS preflight.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from cartlift.errors import PayloadError
from cartlift.integrations import tracker_records, tracker_script, verify_restore
from cartlift.serve._deps import ServiceDep, running_service
from cartlift.serve._errors import ApiError
from cartlift.serve._keys import ApiKey
from cartlift.serve.routes._common import errors
from cartlift.serve.routes._mapped import read_json, store_mapped

router = APIRouter(prefix="/v1", tags=["tracker"])

_SCRIPT = tracker_script()
KeyParam = Annotated[str | None, Query(description="The track key (sendBeacon cannot send headers).")]


async def _track_key(request: Request, key: str | None) -> tuple[ApiKey, str]:
    """The request's track key and its allowed ``Origin``; 401/403 otherwise, before anything is read."""
    header = request.headers.get("authorization", "")
    kind, _, bearer = header.partition(" ")
    token = key or (bearer.strip() if kind.lower() == "bearer" else None)
    found = await running_service(request).authenticate(token=token, scope="track")
    origin = request.headers.get("origin")
    if found.scope == "track" and (origin is None or origin.lower() not in found.origins):
        raise ApiError(
            403,
            f"This track key may be used from {', '.join(found.origins)} only; this request comes from "
            f"{origin or 'no page (no Origin header)'}. Add the origin with a new key "
            "(`cartlift keys create --scope track --origin ...`).",
        )
    return found, origin or "*"


def _cors(response: Response, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"


@router.get(
    "/tracker.js",
    include_in_schema=True,
    responses={**errors(), 200: {"content": {"application/javascript": {}}, "description": "The script"}},
    response_class=Response,
    summary="The storefront tracker script",
    openapi_extra={"security": []},  # public by design: a shop's pages load it without a key
)
async def tracker_js() -> Response:
    """The tracker (no key needed to fetch it; cached by browsers for 5 minutes)."""
    return Response(
        _SCRIPT,
        media_type="application/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


@router.post(
    "/track",
    responses=errors(401, 403, 413, 422, 429, 503),
    summary="Receive a batch from the storefront tracker",
)
async def post_track(
    request: Request, response: Response, service: ServiceDep, key: KeyParam = None
) -> dict[str, Any]:
    """Store a tracker batch: events through the one intake path, identifies as identities.

    Events whose anonymous id was joined to a customer before are moved to that customer once
    stored, so a late beacon from before an identify lands in the customer's history too.
    """
    _, origin = await _track_key(request, key)
    _cors(response, origin)
    try:
        mapped = tracker_records(await read_json(request), received_at=datetime.now(UTC).replace(tzinfo=None))
    except PayloadError as e:
        raise ApiError(422, f"{e} Nothing was stored.") from None
    # read before storing: the intake takes the records over (properties become JSON text)
    anonymous = sorted(
        {
            service.user(str(e["properties"]["anonymous_id"]))
            for e in mapped.events
            if e["properties"].get("anonymous_id") and e["user_id"] == e["properties"]["anonymous_id"]
        }
    )
    answer = await store_mapped(service, mapped)
    answer["events_joined"] += await service.intake.rejoin(anonymous_ids=anonymous)
    return answer


@router.get(
    "/track/restore", responses=errors(401, 403, 404, 429, 503), summary="Restore a cart from a signed link"
)
async def restore_cart(
    request: Request,
    response: Response,
    service: ServiceDep,
    token: Annotated[str, Query(max_length=600, description="The cl_restore parameter of the landing URL.")],
    key: KeyParam = None,
) -> dict[str, Any]:
    """The lines of the cart a recovery link names, when its signature holds and it has not expired."""
    _, origin = await _track_key(request, key)
    _cors(response, origin)
    secret = service.settings.restore_secret
    cart = verify_restore(token, secret.get_secret_value()) if secret is not None else None
    if cart is None:
        raise ApiError(
            404, "This restore link is not valid (altered, expired, or not signed by this service)."
        )
    return {"cart_id": cart, "items": await service.intake.cart_lines(session_id=cart)}
