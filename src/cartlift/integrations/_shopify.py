"""Shopify webhooks -> event records and identities (pure), and the webhook signature check.

=================  ==========================================================================
topic              records
=================  ==========================================================================
checkouts/create   a ``cart_add`` per line and one ``checkout``; the e-mail and the consent
checkouts/update   (``buyer_accepts_marketing``) as an identity: the identified abandoned cart
orders/create      a ``purchase`` per line with the order id, in the checkout's session
customers/create   an identity with the e-mail consent (``email_marketing_consent``, or
customers/update   ``accepts_marketing`` on older API versions)
=================  ==========================================================================

Every event id is built from Shopify's own ids (checkout token and line key, order id and line
id), so a webhook delivered twice, or an update that repeats the lines of its create, stores each
line once. The customer is Shopify's customer id (what a storefront's ``identify`` sends), else
the checkout e-mail. A checkout's session is its ``cart_token``, and an order's session the
``checkout_token`` or ``cart_token`` it came from, so the purchase closes the checkout's funnel.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from cartlift.errors import PayloadError
from cartlift.integrations._records import (
    Identity,
    Mapped,
    as_number,
    as_text,
    parse_time,
    require_object,
)

__all__ = ["SHOPIFY_TOPICS", "shopify_records", "shopify_signature", "verify_shopify"]

SHOPIFY_TOPICS: Final = (
    "checkouts/create",
    "checkouts/update",
    "orders/create",
    "customers/create",
    "customers/update",
)


def shopify_signature(body: bytes, secret: str) -> str:
    """What Shopify sends in ``X-Shopify-Hmac-Sha256``: base64 of the HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_shopify(body: bytes, signature: str | None, secret: str) -> bool:
    """True when ``signature`` is the body's HMAC with ``secret`` (compared in constant time)."""
    if not signature:
        return False
    return hmac.compare_digest(shopify_signature(body, secret), signature.strip())


def _lines(payload: Mapping[str, Any], what: str) -> list[Mapping[str, Any]]:
    lines = payload.get("line_items")
    if not isinstance(lines, Sequence) or isinstance(lines, str):
        raise PayloadError(f'The {what} has no "line_items" list.')
    return [require_object(line, f"line_items[{i}]") for i, line in enumerate(lines)]


def _customer(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    customer = payload.get("customer")
    return customer if isinstance(customer, Mapping) else {}


def _user(payload: Mapping[str, Any]) -> str | None:
    email = as_text(payload.get("email")) or as_text(_customer(payload).get("email"))
    return as_text(_customer(payload).get("id")) or (email.lower() if email else None)


def _time(payload: Mapping[str, Any], *keys: str) -> datetime:
    for key in keys:
        if payload.get(key):
            return parse_time(payload[key], key)
    raise PayloadError(f"The payload has none of the times {', '.join(keys)}.")


def _consent(person: Mapping[str, Any]) -> tuple[bool | None, str | None, datetime | None]:
    """E-mail marketing consent of a customer object: (consent, its source, when)."""
    state = person.get("email_marketing_consent")
    if isinstance(state, Mapping) and isinstance(state.get("state"), str):
        when = state.get("consent_updated_at")
        at = parse_time(when, "email_marketing_consent.consent_updated_at") if when else None
        return state["state"].lower() == "subscribed", "shopify:email_marketing_consent", at
    if isinstance(person.get("accepts_marketing"), bool):
        when = person.get("accepts_marketing_updated_at")
        at = parse_time(when, "accepts_marketing_updated_at") if when else None
        return person["accepts_marketing"], "shopify:accepts_marketing", at
    return None, None, None


def _identity(payload: Mapping[str, Any], ts: datetime, *, buyer_consent: bool) -> Identity | None:
    """The customer of a checkout or order, with the consent the buyer gave at checkout."""
    user = _user(payload)
    if user is None:
        return None
    email = as_text(payload.get("email")) or as_text(_customer(payload).get("email"))
    consent, source, at = _consent(_customer(payload))
    if buyer_consent and isinstance(payload.get("buyer_accepts_marketing"), bool):
        consent, source, at = payload["buyer_accepts_marketing"], "shopify:buyer_accepts_marketing", ts
    return Identity(
        user_id=user,
        source="shopify",
        ts=ts,
        email=email,
        email_consent=consent,
        consent_source=source,
        consent_at=at,
    )


def _line_record(
    line: Mapping[str, Any], base: dict[str, Any], event_type: str, event_id: str
) -> dict[str, Any]:
    props = {"source": "shopify"}
    for key in ("title", "variant_title", "sku", "vendor"):
        if as_text(line.get(key)):
            props[key] = str(line[key])
    if as_text(line.get("variant_id")):
        props["variant_id"] = str(line["variant_id"])
    return {
        **base,
        "event_id": event_id,
        "event_type": event_type,
        "product_id": as_text(line.get("product_id")),
        "quantity": line.get("quantity"),
        "price": as_number(line.get("price")),
        "properties": props,
    }


def _checkout(payload: Mapping[str, Any], topic: str, out: Mapped) -> None:
    token = as_text(payload.get("token"))
    if token is None:
        raise PayloadError(f'A {topic} payload needs the checkout "token".')
    ts = _time(payload, "updated_at", "created_at")
    user = _user(payload) or f"checkout:{token}"
    base = {
        "ts": ts.isoformat() + "Z",
        "user_id": user,
        "session_id": as_text(payload.get("cart_token")) or token,
    }
    for i, line in enumerate(_lines(payload, "checkout")):
        key = (
            as_text(line.get("key"))
            or as_text(line.get("variant_id"))
            or as_text(line.get("product_id"))
            or str(i)
        )
        out.events.append(_line_record(line, base, "cart_add", f"shopify:checkout:{token}:{key}"))
    props: dict[str, Any] = {"source": "shopify", "topic": topic}
    for key in ("total_price", "currency", "abandoned_checkout_url"):
        if payload.get(key) is not None:
            props[key] = payload[key]
    out.events.append(
        {**base, "event_id": f"shopify:checkout:{token}", "event_type": "checkout", "properties": props}
    )
    identity = _identity(payload, ts, buyer_consent=True)
    if identity is not None:
        out.identities.append(identity)


def _order(payload: Mapping[str, Any], out: Mapped) -> None:
    order_id = as_text(payload.get("id"))
    if order_id is None:
        raise PayloadError('An orders/create payload needs the order "id".')
    ts = _time(payload, "processed_at", "created_at")
    base = {
        "ts": ts.isoformat() + "Z",
        "user_id": _user(payload) or f"order:{order_id}",
        # the checkout's session: its cart token, else its own token (as `_checkout` chooses)
        "session_id": as_text(payload.get("cart_token"))
        or as_text(payload.get("checkout_token"))
        or f"order:{order_id}",
        "order_id": order_id,
    }
    for i, line in enumerate(_lines(payload, "order")):
        line_id = as_text(line.get("id")) or str(i)
        record = _line_record(line, base, "purchase", f"shopify:order:{order_id}:{line_id}")
        if as_text(payload.get("name")):
            record["properties"]["order_name"] = str(payload["name"])
        out.events.append(record)
    identity = _identity(payload, ts, buyer_consent=True)
    if identity is not None:
        out.identities.append(identity)


def _customer_identity(payload: Mapping[str, Any], out: Mapped) -> None:
    user = as_text(payload.get("id"))
    if user is None:
        raise PayloadError('A customers payload needs the customer "id".')
    consent, source, at = _consent(payload)
    out.identities.append(
        Identity(
            user_id=user,
            source="shopify",
            ts=_time(payload, "updated_at", "created_at"),
            email=as_text(payload.get("email")),
            email_consent=consent,
            consent_source=source,
            consent_at=at,
        )
    )


def shopify_records(topic: str, payload: Any) -> Mapped:
    """Map one Shopify webhook onto event records and identities.

    Parameters
    ----------
    topic : str
        ``X-Shopify-Topic``: one of `SHOPIFY_TOPICS`.
    payload : object
        The decoded JSON body.

    Raises
    ------
    PayloadError
        An unknown topic, or a body without what the topic's documented payload always has.
    """
    topic = (topic or "").strip().lower()
    if topic not in SHOPIFY_TOPICS:
        raise PayloadError(
            f"The Shopify topic {topic!r} is not one cartlift reads; subscribe the webhook to: {', '.join(SHOPIFY_TOPICS)}."
        )
    body = require_object(payload, f"The {topic} body")
    out = Mapped()
    if topic.startswith("checkouts/"):
        _checkout(body, topic, out)
    elif topic == "orders/create":
        _order(body, out)
    else:
        _customer_identity(body, out)
    return out
