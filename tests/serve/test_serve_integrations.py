"""Segment, RudderStack and Shopify webhooks against a real `cartlift serve` on PostgreSQL.

PostgreSQL lets the test read the store while the server writes it. The payloads are the
documented examples kept in ``tests/integrations/fixtures`` (each names its source).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _serve_helpers import Server, check_error, pg_schema

from cartlift.integrations import shopify_signature
from cartlift.serve import create_key_in_store
from cartlift.store._postgres import connect

FIXTURES = Path(__file__).resolve().parents[1] / "integrations" / "fixtures"
SECRET = "shpss_test_secret"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


class Shop:
    """A running server, its store URL and keys."""

    def __init__(self, url: str, server: Server, keys: dict[str, str]) -> None:
        self.url, self.server, self.keys = url, server, keys
        self.http = httpx.Client(base_url=server.url, timeout=60)

    def rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        con = connect(self.url)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def segment(self, payload: Any, key: str = "ingest") -> httpx.Response:
        return self.http.post(
            "/v1/integrations/segment",
            content=json.dumps(payload),
            headers={"Authorization": f"Bearer {self.keys[key]}", "Content-Type": "application/json"},
        )

    def shopify(
        self, topic: str, body: bytes, *, webhook_id: str, signature: str | None = None
    ) -> httpx.Response:
        return self.http.post(
            "/v1/integrations/shopify",
            content=body,
            headers={
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": signature
                if signature is not None
                else shopify_signature(body, SECRET),
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-Shop-Domain": "johns-apparel.myshopify.com",
                "Content-Type": "application/json",
            },
        )


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with pg_schema() as url:
        keys = {scope: create_key_in_store(url, scope=scope)[0] for scope in ("ingest", "read")}
        folder = tmp_path_factory.mktemp("integrations")
        server = Server(url, folder / "server.log", env={"CARTLIFT_SERVE_SHOPIFY_SECRET": SECRET})
        with server:
            s = Shop(url, server, keys)
            try:
                yield s
            finally:
                s.http.close()


def test_segment_batch_stores_events_and_joins_the_anonymous_history(shop: Shop) -> None:
    viewed = fixture("segment_product_viewed")["payload"]
    # the shopper browses anonymously first: a view without a userId
    anonymous_view = {k: v for k, v in viewed.items() if k != "userId"}
    first = shop.segment(anonymous_view)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 1
    assert shop.rows("SELECT user_id FROM events WHERE event_id = %s", [viewed["messageId"]]) == [
        ("507f191e810c19729de860ea",)
    ]
    answer = shop.segment(fixture("segment_batch")["payload"]).json()
    assert (answer["accepted"], answer["rejected"]) == (4, 0)
    assert answer["ignored"][0]["reason"].startswith("'Cart Viewed'")
    assert answer["events_joined"] >= 2  # the anonymous view and cart add became the customer's
    history = shop.rows(
        "SELECT event_type, product_id FROM events WHERE user_id = '97980cfea0067' ORDER BY ts, event_id"
    )
    assert [h[0] for h in history] == ["view", "cart_add", "checkout", "purchase", "purchase"]
    assert shop.rows("SELECT count(*) FROM events WHERE user_id = '507f191e810c19729de860ea'") == [(0,)]
    assert shop.rows(
        "SELECT email FROM identities WHERE user_id = '97980cfea0067' AND email IS NOT NULL"
    ) == [("peter@example.com",)]
    # a redelivered batch is stored once
    again = shop.segment(fixture("segment_batch")["payload"]).json()
    assert (again["accepted"], again["duplicates"], again["identities"]) == (0, 4, 0)


def test_rudderstack_on_the_same_route(shop: Shop) -> None:
    answer = shop.segment(fixture("rudderstack_order_completed")["payload"]).json()
    assert (answer["accepted"], answer["rejected"]) == (3, 0)
    rows = shop.rows(
        "SELECT event_type, ts, session_id FROM events WHERE user_id = '1hKOmRA4el9Zt1WSfVJIVo4GRlm' ORDER BY ts"
    )
    assert [r[0] for r in rows] == ["cart_add", "purchase", "purchase"]
    assert str(rows[0][1]) == "2020-01-09 10:01:30.384000"  # +05:30 read as UTC
    assert {r[2] for r in rows} == {"1662984537487"}


def test_malformed_segment_payload_is_422_and_stores_nothing(shop: Shop) -> None:
    before = shop.rows("SELECT count(*) FROM events")
    bad = {"type": "track", "event": "Order Completed", "messageId": "x", "properties": {"products": "p1"}}
    error = check_error(shop.segment(bad), 422)
    assert "products" in error["message"] and "Nothing was stored" in error["message"]
    check_error(
        shop.http.post(
            "/v1/integrations/segment",
            content=b"{not json",
            headers={"Authorization": f"Bearer {shop.keys['ingest']}"},
        ),
        422,
    )
    check_error(shop.segment(fixture("segment_product_viewed")["payload"], key="read"), 403)
    assert shop.rows("SELECT count(*) FROM events") == before


def test_shopify_checkout_order_and_customer(shop: Shop) -> None:
    data = fixture("shopify_checkouts_create")
    body = json.dumps(data["payload"]).encode()
    answer = shop.shopify(data["topic"], body, webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["identities"]) == (3, 1)
    session = "eeafa272cebfd4b22385bc4b645e762c"
    assert shop.rows("SELECT count(*), min(user_id) FROM events WHERE session_id = %s", [session]) == [
        (3, "603851970716743426")
    ]
    consent = shop.rows(
        "SELECT email, email_consent, consent_source FROM identities WHERE user_id = '603851970716743426'"
    )
    assert consent == [("example@email.com", False, "shopify:buyer_accepts_marketing")]
    # the order of that checkout closes its session's funnel
    order = fixture("shopify_orders_create")
    paid = {**order["payload"], "cart_token": session}
    body = json.dumps(paid).encode()
    assert shop.shopify(order["topic"], body, webhook_id="order-hook-1").json()["accepted"] == 2
    kinds = shop.rows(
        "SELECT event_type FROM events WHERE session_id = %s ORDER BY ts, event_type", [session]
    )
    assert [k[0] for k in kinds] == ["cart_add", "cart_add", "checkout", "purchase", "purchase"]
    update = fixture("shopify_customers_update")
    body = json.dumps(update["payload"]).encode()
    assert shop.shopify(update["topic"], body, webhook_id="cust-hook-1").json()["identities"] == 1
    assert shop.rows("SELECT email_consent FROM identities WHERE user_id = '706405506930370084'") == [(True,)]


def test_shopify_replay_wrong_signature_and_malformed(shop: Shop) -> None:
    data = fixture("shopify_checkouts_create")
    payload = {**data["payload"], "token": "replayed-token", "cart_token": "replayed-cart"}
    body = json.dumps(payload).encode()
    first = shop.shopify(data["topic"], body, webhook_id="replay-1").json()
    assert first["accepted"] == 3 and first["duplicate"] is False
    # the same delivery again: answered at once, nothing stored twice
    assert shop.shopify(data["topic"], body, webhook_id="replay-1").json()["duplicate"] is True
    # a new delivery of the same checkout (Shopify's own ids): duplicates, not new events
    second = shop.shopify(data["topic"], body, webhook_id="replay-2").json()
    assert (second["accepted"], second["duplicates"]) == (0, 3)
    assert shop.rows("SELECT count(*) FROM events WHERE session_id = 'replayed-cart'") == [(3,)]
    # a wrong signature: 401, nothing stored
    tampered = json.dumps({**payload, "token": "evil", "cart_token": "evil-cart"}).encode()
    error = check_error(
        shop.shopify(data["topic"], tampered, webhook_id="evil-1", signature=shopify_signature(body, SECRET)),
        401,
    )
    assert "signature" in error["message"]
    check_error(shop.shopify(data["topic"], tampered, webhook_id="evil-2", signature=""), 401)
    assert shop.rows("SELECT count(*) FROM events WHERE session_id = 'evil-cart'") == [(0,)]
    assert shop.rows("SELECT count(*) FROM webhook_receipts WHERE receipt_id LIKE 'shopify:evil%%'") == [(0,)]
    # malformed but signed: 422 with the reason, nothing stored
    broken = {"token": "t-broken", "cart_token": "broken-cart", "created_at": "2020-03-04T12:38:08-05:00"}
    broken = json.dumps({**broken, "line_items": "none"}).encode()
    error = check_error(shop.shopify("checkouts/create", broken, webhook_id="broken-1"), 422)
    assert "line_items" in error["message"]
    assert shop.rows("SELECT count(*) FROM events WHERE session_id = 'broken-cart'") == [(0,)]
    check_error(shop.shopify("checkouts/create", b"<xml/>", webhook_id="broken-2"), 422)
