"""Schemathesis hooks of the stateful run over the links of ``POST /v1/events`` (``SCHEMATHESIS_HOOKS``).

The events schema cannot say what a storable event is (any string is a valid ``ts`` or
``event_type`` on the wire: the events package rejects such an event with its reason and keeps
the rest of the batch), so generated batches are nearly all rejected and the linked cart, user and
experiment routes would only ever see ids that do not exist. This hook keeps every generated
field but makes each event storable: a recent time, a known event type, a session. The links
then carry ids the service has stored, which is the data the stateful run is for.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis

from cartlift.events import EVENT_TYPES


@schemathesis.hook("map_body").apply_to(method="POST", path="/v1/events")
def storable_events(context: Any, body: Any) -> Any:
    """The generated batch made storable: recent times, known types, one cart that starts with a cart_add.

    Ids, products, channels and properties stay as generated; the first event's session (the one
    the links name) is the batch's cart, so a batch without a purchase is an abandoned cart.
    """
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return body
    events = [e for e in body["events"] if isinstance(e, dict)]
    if not events:
        return body
    digest = hashlib.sha256(repr(body).encode()).hexdigest()
    session = events[0].get("session_id") or f"st-cart-{digest[:12]}"
    now = datetime.now(UTC).replace(microsecond=0)
    for i, event in enumerate(events):
        kind = "cart_add" if i == 0 else EVENT_TYPES[int(digest[i % 60 : i % 60 + 4], 16) % len(EVENT_TYPES)]
        event.update(
            ts=(now - timedelta(minutes=len(events) - i)).isoformat(),
            event_type=kind,
            session_id=session,
            user_id=event.get("user_id") or f"st-user-{digest[:12]}",
            quantity=1,
            price=9.5,
        )
        if kind != "checkout":
            event["product_id"] = event.get("product_id") or "p1"
        if kind == "purchase":
            event["order_id"] = event.get("order_id") or f"st-order-{digest[:12]}"
    return body
