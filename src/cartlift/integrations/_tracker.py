"""The storefront tracker's batches -> event records and identities (pure), and the script itself.

The tracker (``tracker.js``, served at ``GET /v1/tracker.js``) posts
``{"sent_at": ISO, "batch": [item, ...]}``, each item an event (``kind: "event"``: ``id``,
``ts``, ``type``, ``session_id``, ``anonymous_id``, ``user_id`` once identified, the product,
quantity, price, order id, and for a purchase its ``items``) or an identify (``kind:
"identify"``: ``user_id``, ``anonymous_id``, ``email``). Browsers' clocks drift: every time is
moved by the difference between the server's receipt and the batch's ``sent_at``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, Final

from cartlift.errors import PayloadError
from cartlift.integrations._records import (
    Identity,
    Mapped,
    as_number,
    as_text,
    iso_utc,
    parse_time,
    require_object,
)

__all__ = ["TRACKER_EVENTS", "tracker_records", "tracker_script"]

TRACKER_EVENTS: Final = ("view", "cart_add", "cart_remove", "checkout", "purchase")
"""The event types the tracker sends (returns happen in the back office, not on the page)."""

_MAX_SKEW: Final = timedelta(days=1)


def tracker_script() -> bytes:
    """The tracker's source (``tracker.js``, shipped in the package)."""
    return resources.files("cartlift.integrations").joinpath("tracker.js").read_bytes()


def _event(item: Mapping[str, Any], index: int, skew: timedelta) -> list[dict[str, Any]]:
    kind = as_text(item.get("type"))
    if kind not in TRACKER_EVENTS:
        raise PayloadError(
            f"batch[{index}] has type {item.get('type')!r}; the tracker sends {', '.join(TRACKER_EVENTS)}."
        )
    event_id = as_text(item.get("id"))
    if event_id is None:
        raise PayloadError(
            f'batch[{index}] has no "id": the tracker gives every event one, kept across retries.'
        )
    anonymous = as_text(item.get("anonymous_id"))
    base = {
        "ts": iso_utc(parse_time(item.get("ts"), f"batch[{index}].ts") + skew),
        "user_id": as_text(item.get("user_id")) or anonymous,
        "session_id": as_text(item.get("session_id")),
        "order_id": as_text(item.get("order_id")),
        "device": "web",
        "properties": {"source": "tracker", **({"anonymous_id": anonymous} if anonymous else {})},
    }
    lines = item.get("items")
    if kind == "purchase" and lines is not None:
        if not isinstance(lines, Sequence) or isinstance(lines, str) or not lines:
            raise PayloadError(f"batch[{index}].items must be a non-empty list of the order's lines.")
        out = []
        for i, raw in enumerate(lines):
            line = require_object(raw, f"batch[{index}].items[{i}]")
            out.append(
                {
                    **base,
                    "event_id": f"{event_id}#{i}",
                    "event_type": "purchase",
                    "product_id": as_text(line.get("product_id")),
                    "quantity": line.get("quantity"),
                    "price": as_number(line.get("price")),
                }
            )
        return out
    return [
        {
            **base,
            "event_id": event_id,
            "event_type": kind,
            "product_id": as_text(item.get("product_id")),
            "quantity": item.get("quantity"),
            "price": as_number(item.get("price")),
        }
    ]


def tracker_records(payload: Any, *, received_at: datetime) -> Mapped:
    """Map one tracker batch onto event records and identities.

    Parameters
    ----------
    payload : object
        The decoded body.
    received_at : datetime
        When the server received it (naive UTC): with ``sent_at`` it gives the browser's clock
        error, which every time is corrected by (an error over a day is not trusted).

    Raises
    ------
    PayloadError
        A body that is not a tracker batch.
    """
    body = require_object(payload, "The tracker body")
    batch = body.get("batch")
    if not isinstance(batch, list) or not batch:
        raise PayloadError('The tracker body needs a non-empty "batch" list.')
    skew = timedelta(0)
    if body.get("sent_at") is not None:
        skew = received_at - parse_time(body["sent_at"], "sent_at")
        if abs(skew) > _MAX_SKEW:
            skew = timedelta(0)
    out = Mapped()
    for index, raw in enumerate(batch):
        item = require_object(raw, f"batch[{index}]")
        if item.get("kind") == "identify":
            user = as_text(item.get("user_id"))
            if user is None:
                raise PayloadError(f"batch[{index}] is an identify without a user_id.")
            anonymous = as_text(item.get("anonymous_id"))
            out.identities.append(
                Identity(
                    user_id=user,
                    source="tracker",
                    ts=parse_time(item.get("ts"), f"batch[{index}].ts") + skew,
                    anonymous_id=anonymous if anonymous != user else None,
                    email=as_text(item.get("email")),
                )
            )
        elif item.get("kind", "event") == "event":
            out.events.extend(_event(item, index, skew))
        else:
            raise PayloadError(f"batch[{index}] has kind {item.get('kind')!r}; it is 'event' or 'identify'.")
    return out
