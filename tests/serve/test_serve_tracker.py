"""The storefront tracker end to end: headless Chromium on a small shop served by the test, a real `cartlift serve`.

One shopper journey is run once (module fixture) and the store read after the server stopped;
each test then checks one thing a store owner cares about.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from _serve_helpers import Server, check_error, free_port

from cartlift.integrations import restore_link
from cartlift.serve import create_key_in_store
from cartlift.store import EventStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESTORE_SECRET = "restore-test-secret"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Shop</title></head><body>
<h1>{title}</h1><div id="cart"></div><button id="add">Add to cart</button><button id="consent">Accept</button>
<script src="{api}/v1/tracker.js" {attrs}></script>
<script>{script}</script></body></html>"""


def _script(path: str, key: str, api: str) -> tuple[str, str]:
    """(script attributes, page script) of each page of the shop."""
    auto = f'data-key="{key}"'
    parts = path.strip("/").split("/")
    if parts[0] == "product":  # a product page: a view, and an add-to-cart button
        pid = parts[1]
        return auto, (
            f"cartlift.viewProduct({{product_id: '{pid}', price: 10}});"
            f"document.getElementById('add').onclick = function () {{"
            f" cartlift.addToCart({{product_id: '{pid}', quantity: 1, price: 10}}); }};"
        )
    if parts[0] == "login":
        return auto, f"cartlift.identify('{parts[1]}', {{email: '{parts[1]}@example.com'}});"
    if parts[0] == "consent":  # a shop that asks first
        return auto + " data-require-consent", (
            f"cartlift.viewProduct({{product_id: '{parts[1]}', price: 5}});"
            "document.getElementById('consent').onclick = function () { cartlift.consent(true); };"
        )
    if parts[0] == "beacon":  # nothing is sent on a timer: only the beacon on page hide can deliver
        return "", (
            f"cartlift.init({{key: '{key}', endpoint: '{api}', flushMs: 3600000}});"
            f"cartlift.viewProduct({{product_id: '{parts[1]}', price: 7}});"
            f"cartlift.addToCart({{product_id: '{parts[1]}', quantity: 2, price: 7}});"
        )
    # the cart page: a restored cart is shown
    return auto, (
        "cartlift.onRestore(function (cart) { document.getElementById('cart').textContent ="
        " cart.items.map(function (i) { return i.product_id + 'x' + i.quantity; }).join(','); });"
    )


def shop_server(key: str, api: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            attrs, script = _script(self.path.split("?")[0], key, api)
            body = PAGE.format(title=self.path, api=api, attrs=attrs, script=script).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


@dataclass
class Journey:
    """What the browser saw and sent, and the store afterwards."""

    shop: str
    sent: list[dict[str, Any]] = field(default_factory=list)  # every tracker item posted, with its page
    consent_before: list[str] = field(default_factory=list)  # requests to the service before consent
    storage_before_consent: dict[str, Any] = field(default_factory=dict)
    cookie_aid: str | None = None
    restored_text: str = ""
    tampered_text: str = ""
    refusals: dict[str, tuple[int, str]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)


def _rows(store: EventStore, sql: str) -> list[dict[str, Any]]:
    frame = store.query(sql)
    return frame.astype(object).where(frame.notna(), None).to_dict("records")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); `.ci/run` installs it")
    folder = tmp_path_factory.mktemp("tracker")
    db = str(folder / "store.duckdb")
    server = Server(db, folder / "server.log", env={"CARTLIFT_SERVE_RESTORE_SECRET": RESTORE_SECRET})
    shop_port = free_port()
    shop = f"http://127.0.0.1:{shop_port}"
    track_key = create_key_in_store(db, scope="track", origins=[shop])[0]
    ingest_key = create_key_in_store(db, scope="ingest")[0]
    httpd = shop_server(track_key, server.url, shop_port)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    seen = Journey(shop)
    try:
        with server, sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)

            def record(request: Any) -> None:
                if request.url.startswith(server.url + "/v1/track") and request.method == "POST":
                    for item in json.loads(request.post_data or "{}").get("batch", []):
                        seen.sent.append({**item, "_page": request.frame.url if request.frame else None})

            # 1. a shopper views two products, adds one, leaves; then logs in (identify)
            shopper = browser.new_context()
            shopper.on("request", record)
            page = shopper.new_page()
            page.goto(f"{shop}/product/p1")
            page.goto(f"{shop}/product/p2")
            page.click("#add")
            page.wait_for_function("window.cartlift.pending() === 0", timeout=15_000)
            seen.cookie_aid = next(
                (c["value"] for c in shopper.cookies() if c["name"] == "cartlift_aid"), None
            )
            page.goto(f"{shop}/login/cust-42")
            page.wait_for_function("window.cartlift.pending() === 0", timeout=15_000)
            page.goto("about:blank")
            shopper.close()

            # 2. a page that needs consent sends and stores nothing before it is given
            careful = browser.new_context()
            before: list[str] = []
            careful.on(
                "request",
                lambda r: before.append(r.url) if r.url.split("?")[0] == f"{server.url}/v1/track" else None,
            )
            careful.on("request", record)
            page = careful.new_page()
            page.goto(f"{shop}/consent/p9")
            page.wait_for_timeout(2_500)  # more than the tracker's flush interval
            seen.consent_before = list(before)
            seen.storage_before_consent = {
                "localStorage": page.evaluate("Object.keys(localStorage)"),
                "cookies": [c["name"] for c in careful.cookies()],
            }
            page.click("#consent")
            page.wait_for_function("window.cartlift.pending() === 0", timeout=15_000)
            careful.close()

            # 3. the beacon on page hide: the page never flushes on its own
            leaving = browser.new_context()
            leaving.on("request", record)
            page = leaving.new_page()
            page.goto(f"{shop}/beacon/p5")
            page.wait_for_function("window.cartlift.pending() === 2")
            page.goto("about:blank")  # pagehide -> navigator.sendBeacon
            page.wait_for_timeout(1_500)
            leaving.close()

            # 4. the recovery link restores the first shopper's cart on another device
            session = next(
                i["session_id"] for i in seen.sent if i.get("type") == "cart_add" and i["product_id"] == "p2"
            )
            other = browser.new_context()
            page = other.new_page()
            page.goto(restore_link(f"{shop}/cart", session, RESTORE_SECRET))
            page.wait_for_function("document.getElementById('cart').textContent !== ''", timeout=15_000)
            seen.restored_text = page.inner_text("#cart")
            page.goto(restore_link(f"{shop}/cart", session, "forged-secret"))
            page.wait_for_timeout(1_500)
            seen.tampered_text = page.inner_text("#cart")
            other.close()
            browser.close()

            # 5. the track key elsewhere: another origin, another route, no key
            batch = json.dumps(
                {
                    "batch": [
                        {
                            "kind": "event",
                            "id": "evil-1",
                            "type": "view",
                            "product_id": "p1",
                            "ts": "2026-11-01T10:00:00Z",
                            "anonymous_id": "a_evil",
                        }
                    ]
                }
            )
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for name, response in {
                    "other origin": http.post(
                        f"/v1/track?key={track_key}",
                        content=batch,
                        headers={"Origin": "https://evil.example"},
                    ),
                    "no origin": http.post(f"/v1/track?key={track_key}", content=batch),
                    "events route": http.post(
                        "/v1/events",
                        json={
                            "events": [
                                {
                                    "ts": "2026-11-01T10:00:00Z",
                                    "user_id": "x",
                                    "event_type": "view",
                                    "product_id": "p",
                                }
                            ]
                        },
                        headers={"Authorization": f"Bearer {track_key}", "Origin": shop},
                    ),
                    "ingest key on track": http.post(
                        f"/v1/track?key={ingest_key}", content=batch, headers={"Origin": shop}
                    ),
                    "no key": http.post("/v1/track", content=batch, headers={"Origin": shop}),
                    "malformed": http.post(
                        f"/v1/track?key={track_key}", content=b'{"batch": 3}', headers={"Origin": shop}
                    ),
                    "script": http.get("/v1/tracker.js"),
                }.items():
                    seen.refusals[name] = (response.status_code, response.text)
                    if response.status_code >= 400:
                        check_error(response, response.status_code)
        with EventStore(db, read_only=True) as store:
            seen.events = _rows(store, "SELECT * FROM events ORDER BY ts, event_id")
            seen.identities = _rows(store, "SELECT * FROM identities")
        yield seen
    finally:
        httpd.shutdown()


def _mine(j: Journey, page: str) -> list[dict[str, Any]]:
    return [i for i in j.sent if i.get("kind") == "event" and page in (i.get("_page") or "")]


def test_views_and_add_are_stored_with_their_ids_in_one_session(journey: Journey) -> None:
    sent = {
        i["id"]: i for i in journey.sent if i.get("kind") == "event" and i.get("product_id") in ("p1", "p2")
    }
    stored = {e["event_id"]: e for e in journey.events if e["product_id"] in ("p1", "p2")}
    assert set(stored) == set(sent)  # every event the page made, each once, under the id the page gave it
    assert sorted((e["event_type"], e["product_id"]) for e in stored.values()) == [
        ("cart_add", "p2"),
        ("view", "p1"),
        ("view", "p2"),
    ]
    assert len({e["session_id"] for e in stored.values()}) == 1
    assert journey.cookie_aid and journey.cookie_aid.startswith("a_")


def test_identify_joins_the_anonymous_history_to_the_customer(journey: Journey) -> None:
    mine = [e for e in journey.events if e["product_id"] in ("p1", "p2")]
    assert {e["user_id"] for e in mine} == {"cust-42"}
    assert not [e for e in journey.events if e["user_id"] == journey.cookie_aid]
    [who] = [i for i in journey.identities if i["user_id"] == "cust-42"]
    assert (who["anonymous_id"], who["email"], who["source"]) == (
        journey.cookie_aid,
        "cust-42@example.com",
        "tracker",
    )


def test_consent_required_page_sends_and_keeps_nothing_before_consent(journey: Journey) -> None:
    assert journey.consent_before == []
    assert journey.storage_before_consent == {"localStorage": [], "cookies": []}
    # given consent, the page's view leaves and is stored
    assert [(e["event_type"], e["product_id"]) for e in journey.events if e["product_id"] == "p9"] == [
        ("view", "p9")
    ]


def test_the_beacon_sent_on_page_hide_arrives(journey: Journey) -> None:
    stored = [
        (e["event_type"], e["product_id"], e["quantity"]) for e in journey.events if e["product_id"] == "p5"
    ]
    assert sorted(stored) == [("cart_add", "p5", 2), ("view", "p5", 1)]


def test_a_recovery_link_restores_the_cart_and_a_forged_one_does_not(journey: Journey) -> None:
    assert journey.restored_text == "p2x1"
    assert journey.tampered_text == ""


def test_a_track_key_from_another_origin_or_route_is_refused(journey: Journey) -> None:
    status = {name: code for name, (code, _) in journey.refusals.items()}
    assert status == {
        "other origin": 403,
        "no origin": 403,
        "events route": 403,
        "ingest key on track": 403,
        "no key": 401,
        "malformed": 422,
        "script": 200,
    }
    assert "https://evil.example" in journey.refusals["other origin"][1]
    assert not [e for e in journey.events if e["event_id"] == "evil-1" or e["user_id"] == "x"]
