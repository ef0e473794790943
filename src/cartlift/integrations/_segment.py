"""Segment and RudderStack messages -> event records and identities (pure).

Both tools send the same message shape (Segment's spec, which RudderStack follows): ``type``
(track, identify, page, alias ...), ``event``, ``properties``, ``userId``, ``anonymousId``,
``messageId``, ``timestamp`` and ``context``. The e-commerce spec v2 events map onto ours:

==================  =============  ============================================
Segment event       cartlift       records
==================  =============  ============================================
Product Viewed      view           one, the product in ``properties``
Product Added       cart_add       one
Product Removed     cart_remove    one
Checkout Started    checkout       one for the checkout (``order_id``/``checkout_id``)
Order Completed     purchase       one per entry of ``properties.products``
Order Refunded      return         one per entry of ``properties.products``
==================  =============  ============================================

The v1 names (Viewed Product, Added Product, Removed Product, Started Order, Completed Order)
are the same events. A message's ``messageId`` is its event id; an order's line ``i`` gets
``messageId#i``, so a redelivered message is stored once. RudderStack's ``context.sessionId`` is
the session; Segment sends none and sessions are cut by the usual 30-minute gap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from cartlift.errors import PayloadError
from cartlift.integrations._records import Identity, Mapped, as_number, as_text, require_object, stable_id

__all__ = ["SEGMENT_EVENTS", "segment_records"]

SEGMENT_EVENTS: Final[dict[str, str]] = {
    "product viewed": "view",
    "viewed product": "view",
    "product added": "cart_add",
    "added product": "cart_add",
    "product removed": "cart_remove",
    "removed product": "cart_remove",
    "checkout started": "checkout",
    "started order": "checkout",
    "order completed": "purchase",
    "completed order": "purchase",
    "order refunded": "return",
}
"""Segment/RudderStack e-commerce event names (lower case) -> cartlift event types."""

_PER_LINE: Final = ("purchase", "return")


def _messages(payload: Any) -> list[Mapping[str, Any]]:
    """The messages of a payload: one message, a list of them, or a ``{"batch": [...]}`` envelope."""
    if isinstance(payload, Mapping) and "batch" in payload and "type" not in payload:
        payload = payload["batch"]
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise PayloadError('The payload holds no message: send one message, a list, or {"batch": [...]}.')
    out = []
    for i, item in enumerate(items):
        message = require_object(item, f"message {i}")
        if not isinstance(message.get("type"), str):
            raise PayloadError(f'message {i} has no "type" (track, identify, page, alias ...).')
        out.append(message)
    return out


def _source(message: Mapping[str, Any]) -> str:
    library = (
        message.get("context", {}).get("library", {}) if isinstance(message.get("context"), Mapping) else {}
    )
    name = str(library.get("name", "")) if isinstance(library, Mapping) else ""
    return "rudderstack" if "rudderId" in message or "rudder" in name.lower() else "segment"


def _time(message: Mapping[str, Any]) -> str | None:
    for key in ("timestamp", "originalTimestamp", "sentAt", "receivedAt"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _context(message: Mapping[str, Any]) -> Mapping[str, Any]:
    context = message.get("context") or {}
    return require_object(context, "context")


def _product_id(product: Mapping[str, Any]) -> str | None:
    return as_text(product.get("product_id")) or as_text(product.get("sku")) or as_text(product.get("id"))


def _message_id(message: Mapping[str, Any]) -> str:
    given = as_text(message.get("messageId"))
    if given:
        return given
    # a message without an id is the same message when it comes again: derive one from its content
    return "m_" + stable_id(json.dumps(message, sort_keys=True, default=str))


def _base(message: Mapping[str, Any], source: str, name: str) -> dict[str, Any]:
    context = _context(message)
    device = context.get("device")
    extra = {"source": source, "event": name}
    anonymous = as_text(message.get("anonymousId"))
    if anonymous and as_text(message.get("userId")):
        extra["anonymous_id"] = anonymous
    properties = message.get("properties") or {}
    if isinstance(properties, Mapping) and as_text(properties.get("currency")):
        extra["currency"] = str(properties["currency"])
    return {
        "ts": _time(message),
        "user_id": as_text(message.get("userId")) or anonymous,
        "session_id": as_text(context.get("sessionId")),
        "device": as_text(device.get("type")) if isinstance(device, Mapping) else None,
        "properties": extra,
    }


def _product_record(
    base: dict[str, Any], product: Mapping[str, Any], event_type: str, event_id: str
) -> dict[str, Any]:
    props = dict(base["properties"])
    for key in ("name", "category", "brand", "variant"):
        if as_text(product.get(key)):
            props[key] = str(product[key])
    return {
        **base,
        "event_id": event_id,
        "event_type": event_type,
        "product_id": _product_id(product),
        "quantity": product.get("quantity") if product.get("quantity") is not None else None,
        "price": as_number(product.get("price")),
        "properties": props,
    }


def _track(message: Mapping[str, Any], index: int, source: str, out: Mapped) -> None:
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        raise PayloadError(f'message {index} is a track call without an "event" name.')
    event_type = SEGMENT_EVENTS.get(name.strip().lower())
    if event_type is None:
        out.ignored.append(
            {
                "index": index,
                "type": "track",
                "reason": f"{name!r} is not one of the e-commerce events cartlift reads",
            }
        )
        return
    properties = require_object(message.get("properties") or {}, f"message {index} properties")
    base = _base(message, source, name)
    event_id = _message_id(message)
    order_id = as_text(properties.get("order_id")) or as_text(properties.get("checkout_id"))
    if event_type == "checkout":
        value = as_number(properties.get("value")) or as_number(properties.get("revenue"))
        record = {**base, "event_id": event_id, "event_type": "checkout", "order_id": order_id}
        if value is not None:
            record["properties"] = {**base["properties"], "value": value}
        out.events.append(record)
        return
    if event_type in _PER_LINE:
        products = properties.get("products")
        if not isinstance(products, Sequence) or isinstance(products, str):
            raise PayloadError(f'message {index} ({name}) needs "properties.products": a list of products.')
        if not products:
            out.ignored.append({"index": index, "type": "track", "reason": f"{name!r} lists no products"})
            return
        for i, item in enumerate(products):
            product = require_object(item, f"message {index} properties.products[{i}]")
            record = _product_record(base, product, event_type, f"{event_id}#{i}")
            record["order_id"] = order_id
            out.events.append(record)
        return
    out.events.append(_product_record(base, properties, event_type, event_id))


def _identity(message: Mapping[str, Any], index: int, source: str, out: Mapped) -> None:
    kind = message["type"]
    user = as_text(message.get("userId"))
    if not user:
        out.ignored.append(
            {"index": index, "type": kind, "reason": f"{kind} without a userId names no customer"}
        )
        return
    anonymous = as_text(message.get("previousId" if kind == "alias" else "anonymousId"))
    traits = message.get("traits") or _context(message).get("traits") or {}
    traits = require_object(traits, f"message {index} traits")
    out.identities.append(
        Identity(
            user_id=user,
            source=source,
            ts=_seen_at(message),
            anonymous_id=anonymous if anonymous != user else None,
            email=as_text(traits.get("email")),
        )
    )


def _seen_at(message: Mapping[str, Any]) -> datetime:
    text = _time(message)
    if text is not None:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
        except ValueError:
            pass
    return datetime.now(UTC).replace(tzinfo=None)


def segment_records(payload: Any) -> Mapped:
    """Map a Segment or RudderStack webhook payload onto event records and identities.

    Parameters
    ----------
    payload : object
        The decoded JSON body: one message, a list of messages, or ``{"batch": [...]}``.

    Returns
    -------
    Mapped
        Event records (validated later like every event), identities from ``identify`` and
        ``alias`` calls and from track calls that carry both ``userId`` and ``anonymousId``, and
        the messages that hold nothing cartlift stores, with the reason.

    Raises
    ------
    PayloadError
        When the payload is not shaped as the spec says (no ``type``, products not a list ...).
    """
    out = Mapped()
    for index, message in enumerate(_messages(payload)):
        source = _source(message)
        kind = message["type"].lower()
        if kind == "track":
            _track(message, index, source, out)
        elif kind in ("identify", "alias"):
            _identity(message, index, source, out)
            continue
        elif kind == "page":
            properties = require_object(message.get("properties") or {}, f"message {index} properties")
            if _product_id(properties) is None:
                out.ignored.append(
                    {
                        "index": index,
                        "type": "page",
                        "reason": "a page view without a product_id (events are about products)",
                    }
                )
                continue
            out.events.append(
                _product_record(_base(message, source, "page"), properties, "view", _message_id(message))
            )
        else:
            out.ignored.append(
                {"index": index, "type": kind, "reason": f"{kind} calls carry no events cartlift reads"}
            )
            continue
        user, anonymous = as_text(message.get("userId")), as_text(message.get("anonymousId"))
        if user and anonymous and user != anonymous:
            out.identities.append(
                Identity(user_id=user, source=source, ts=_seen_at(message), anonymous_id=anonymous)
            )
    return out
