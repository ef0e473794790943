"""The pure mappings of Segment, RudderStack and Shopify payloads, on the documented example payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cartlift.errors import PayloadError
from cartlift.integrations import segment_records, shopify_records, shopify_signature, verify_shopify

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    """A documented example payload; every fixture names where it comes from."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    assert data["source"].count("https://") >= 1
    return data


def test_every_fixture_names_its_source() -> None:
    for path in FIXTURES.glob("*.json"):
        assert "https://" in json.loads(path.read_text())["source"], path.name


def test_segment_product_viewed() -> None:
    mapped = segment_records(fixture("segment_product_viewed")["payload"])
    [event] = mapped.events
    assert event["event_id"] == "022bb90c-bbac-11e4-8dfc-aa07a5b093db"
    assert (event["event_type"], event["product_id"], event["price"]) == (
        "view",
        "507f1f77bcf86cd799439011",
        18.99,
    )
    assert event["user_id"] == "97980cfea0067" and event["ts"] == "2015-02-23T22:28:55.111Z"
    assert event["properties"]["anonymous_id"] == "507f191e810c19729de860ea"
    # a track call with both ids links them
    [identity] = mapped.identities
    assert (identity.user_id, identity.anonymous_id, identity.source) == (
        "97980cfea0067",
        "507f191e810c19729de860ea",
        "segment",
    )


def test_segment_batch_maps_every_spec_event() -> None:
    mapped = segment_records(fixture("segment_batch")["payload"])
    kinds = [(e["event_type"], e.get("product_id"), e.get("quantity")) for e in mapped.events]
    assert kinds == [
        ("cart_add", "507f1f77bcf86cd799439011", 1),
        ("checkout", None, None),
        ("purchase", "507f1f77bcf86cd799439011", 1),
        ("purchase", "505bd76785ebb509fc183733", 2),
    ]
    # anonymous before identify, the customer after; the order lines carry the order id
    assert [e["user_id"] for e in mapped.events] == ["507f191e810c19729de860ea"] + ["97980cfea0067"] * 3
    assert {e.get("order_id") for e in mapped.events[1:]} == {"50314b8e9bcf000000000000"}
    assert mapped.events[2]["event_id"] == "022bb90c-bbac-11e4-8dfc-aa07a5b093d5#0"
    emails = {(i.user_id, i.anonymous_id, i.email) for i in mapped.identities}
    assert ("97980cfea0067", "507f191e810c19729de860ea", "peter@example.com") in emails
    assert mapped.ignored == [
        {
            "index": 1,
            "type": "track",
            "reason": "'Cart Viewed' is not one of the e-commerce events cartlift reads",
        }
    ]


def test_rudderstack_payloads_follow_the_same_spec() -> None:
    mapped = segment_records(fixture("rudderstack_order_completed")["payload"])
    assert [e["event_type"] for e in mapped.events] == ["cart_add", "purchase", "purchase"]
    # RudderStack's session id is kept; its time carries an offset, read as UTC by the validation
    assert {e["session_id"] for e in mapped.events} == {"1662984537487"}
    assert mapped.events[0]["ts"] == "2020-01-09T15:31:30.384+05:30"
    assert {i.source for i in mapped.identities} == {"rudderstack"}
    assert mapped.events[2]["price"] == 3.45 and mapped.events[2]["quantity"] == 2


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "no message"),
        ({"event": "Product Viewed"}, 'no "type"'),
        ([1], "message 0 must be a JSON object"),
        ({"type": "track"}, 'without an "event" name'),
        ({"type": "track", "event": "Order Completed", "properties": {"products": "p1"}}, "products.*list"),
        ({"type": "track", "event": "Product Added", "properties": [1]}, "properties must be a JSON object"),
    ],
)
def test_malformed_segment_payloads_say_why(payload: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        segment_records(payload)


def test_shopify_checkout_is_an_identified_cart() -> None:
    data = fixture("shopify_checkouts_create")
    mapped = shopify_records(data["topic"], data["payload"])
    lines = [(e["event_type"], e.get("product_id"), e.get("quantity"), e.get("price")) for e in mapped.events]
    assert lines == [
        ("cart_add", "632910392", 1, 199.0),
        ("cart_add", "921728736", 2, 199.0),
        ("checkout", None, None, None),
    ]
    assert {e["session_id"] for e in mapped.events} == {"eeafa272cebfd4b22385bc4b645e762c"}
    assert {e["user_id"] for e in mapped.events} == {"603851970716743426"}
    assert mapped.events[0]["ts"] == "2020-03-04T17:38:08Z"  # -05:00 in UTC
    assert mapped.events[2]["properties"]["abandoned_checkout_url"].startswith("https://")
    [who] = mapped.identities
    assert (who.email, who.email_consent, who.consent_source) == (
        "example@email.com",
        False,
        "shopify:buyer_accepts_marketing",
    )
    # an update repeating the lines maps to the same event ids: stored once
    again = shopify_records(
        "checkouts/update", {**data["payload"], "updated_at": "2020-03-04T12:50:00-05:00"}
    )
    assert [e["event_id"] for e in again.events] == [e["event_id"] for e in mapped.events]


def test_shopify_order_and_customers() -> None:
    data = fixture("shopify_orders_create")
    order = shopify_records(data["topic"], data["payload"])
    assert [(e["event_type"], e["order_id"], e["product_id"]) for e in order.events] == [
        ("purchase", "820982911946154508", "632910392")
    ] * 2
    assert len({e["event_id"] for e in order.events}) == 2  # two lines, two ids
    assert order.identities[0].email_consent is True
    update = fixture("shopify_customers_update")
    [who] = shopify_records(update["topic"], update["payload"]).identities
    assert (who.user_id, who.email, who.email_consent, who.consent_source) == (
        "706405506930370084",
        "bob@biller.com",
        True,
        "shopify:email_marketing_consent",
    )
    create = fixture("shopify_customers_create")
    [old] = shopify_records(create["topic"], create["payload"]).identities
    assert (old.email_consent, old.consent_source) == (True, "shopify:accepts_marketing")


@pytest.mark.parametrize(
    ("topic", "payload", "message"),
    [
        ("products/create", {}, "not one cartlift reads.*checkouts/create"),
        ("orders/create", [], "must be a JSON object"),
        ("orders/create", {"id": 1, "created_at": "2021-01-01T00:00:00Z"}, 'no "line_items"'),
        ("checkouts/create", {"line_items": []}, 'needs the checkout "token"'),
        ("customers/create", {"email": "a@b.c"}, 'needs the customer "id"'),
        ("orders/create", {"id": 1, "created_at": "yesterday", "line_items": []}, "ISO 8601"),
    ],
)
def test_malformed_shopify_payloads_say_why(topic: str, payload: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        shopify_records(topic, payload)


def test_shopify_signature_is_the_documented_hmac() -> None:
    import base64
    import hashlib
    import hmac

    body = b'{"id": 1}'
    expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert shopify_signature(body, "s3cret") == expected
    assert verify_shopify(body, expected, "s3cret")
    assert not verify_shopify(body + b" ", expected, "s3cret")
    assert not verify_shopify(body, None, "s3cret")
