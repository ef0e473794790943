"""The HTTP API through a real server process on 127.0.0.1: every route and every error status."""

from __future__ import annotations

import json
import math
import threading

import httpx
import pytest
from _serve_helpers import Running, check_error, make_events

from cartlift.events import UNKNOWN_EVENT_TYPE
from cartlift.experiments import Experiment, assign
from cartlift.predict import SessionState


def _event(event_id: str, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": event_id,
        "ts": "2026-11-01T10:00:00Z",
        "user_id": "api-user",
        "session_id": "api-session",
        "event_type": "view",
        "product_id": "p1",
        "price": 6.0,
        "quantity": 1,
    }
    return {**base, **kw}


def _stored(running: Running) -> int:
    response = running.api("GET", "/v1/dashboard")
    assert response.status_code == 200, response.text
    return int(response.json()["events"])


# -- operations ---------------------------------------------------------------------------------


def test_health_ready_and_docs(running: Running) -> None:
    api = running.api
    assert api("GET", "/healthz", key=None).json() == {"status": "ok"}
    ready = api("GET", "/readyz", key=None).json()
    assert ready["ready"] is True and set(ready["models"]) == {"recommender", "popularity", "abandonment"}
    docs = api("GET", "/docs", key=None)
    assert docs.status_code == 200 and "/static/docs/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert api("GET", "/static/docs/swagger-ui-bundle.js", key=None).status_code == 200
    spec = api("GET", "/openapi.json", key=None).json()
    assert "/v1/events" in spec["paths"] and "/v1/carts/{session_id}/risk" in spec["paths"]


def test_metrics_count_requests_events_and_models(running: Running) -> None:
    api = running.api
    api("POST", "/v1/events", json={"events": [_event("metrics-1")]})
    text = api("GET", "/metrics").text
    assert 'cartlift_http_requests_total{method="POST",route="/v1/events",status="200"}' in text
    assert 'cartlift_http_request_duration_seconds_bucket{method="POST",route="/v1/events",le="+Inf"}' in text
    accepted = [
        line
        for line in text.splitlines()
        if line.startswith('cartlift_events_ingested_total{outcome="accepted"}')
    ]
    assert accepted and float(accepted[0].split()[-1]) >= 1
    assert 'cartlift_model_info{kind="recommender",name="itemknn",version="v000' in text
    assert "cartlift_impressions_pending " in text  # lists answered, not yet in rec_impressions
    # raw paths never become labels: one series per route template
    api("GET", "/v1/users/someone-else/recommendations")
    assert "someone-else" not in api("GET", "/metrics").text


# -- events -------------------------------------------------------------------------------------


def test_events_are_validated_per_event_with_the_importers_rules(running: Running) -> None:
    api = running.api
    batch = [
        _event("v-ok"),
        _event("v-bad-time", ts="yesterday-ish"),
        _event("v-bad-type", event_type="teleport"),
        _event("v-neg", price=-1),
        _event("v-qty", event_type="cart_add", quantity=1.5),
        _event("v-noproduct", event_type="cart_add", product_id=None),
    ]
    response = api("POST", "/v1/events", json={"events": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 5)
    reasons = {e["event_id"]: e["reason"] for e in body["errors"]}
    assert reasons == {
        "v-bad-time": "unparseable time",
        "v-bad-type": UNKNOWN_EVENT_TYPE,
        "v-neg": "negative price",
        "v-qty": "quantity must be a positive whole number",
        "v-noproduct": "missing product",
    }
    assert [e["index"] for e in body["errors"]] == [1, 2, 3, 4, 5]


def test_a_batch_posted_twice_is_stored_once(running: Running) -> None:
    api = running.api
    batch = {"events": [_event(f"twice-{i}", session_id="twice") for i in range(5)]}
    before = _stored(running)
    first = api("POST", "/v1/events", json=batch).json()
    second = api("POST", "/v1/events", json=batch).json()
    assert (first["accepted"], first["duplicates"]) == (5, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 5)
    assert sorted(second["duplicate_ids"]) == sorted(e["event_id"] for e in batch["events"])
    assert _stored(running) == before + 5


def test_events_without_ids_are_idempotent_too(running: Running) -> None:
    event = _event("x")
    del event["event_id"]
    event["session_id"] = "no-id"
    first = running.api("POST", "/v1/events", json={"events": [event]}).json()
    second = running.api("POST", "/v1/events", json={"events": [event]}).json()
    assert (first["accepted"], second["duplicates"]) == (1, 1)


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ('{"events": [', 400, "not valid JSON"),
        ({"events": []}, 422, "events"),
        ({"events": [{"ts": "2026-01-01"}]}, 422, "events.0"),
        ({"events": [{**_event("x"), "colour": "red"}]}, 422, "colour"),
        ({"evnts": [_event("x")]}, 422, "events"),
        ({"events": [_event(f"big-{i}") for i in range(1001)]}, 413, "at most 1,000"),
    ],
)
def test_malformed_or_oversized_batches_store_nothing(
    running: Running, body: object, status: int, match: str
) -> None:
    before = _stored(running)
    content = body if isinstance(body, str) else json.dumps(body)
    response = running.api(
        "POST", "/v1/events", content=content, headers={"Content-Type": "application/json"}
    )
    error = check_error(response, status)
    assert match in error["message"] or match in json.dumps(error.get("details"))
    assert _stored(running) == before


def test_bodies_over_the_size_limit_are_refused_before_reading(running: Running) -> None:
    big = {"events": [_event(f"huge-{i}", properties={"pad": "x" * 500}) for i in range(600)]}
    before = _stored(running)
    check_error(running.api("POST", "/v1/events", json=big), 413)

    def chunks():  # no Content-Length: counted while streaming
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    check_error(
        running.api("POST", "/v1/events", content=chunks(), headers={"Content-Type": "application/json"}), 413
    )
    assert _stored(running) == before


# -- keys, scopes, rate limits ------------------------------------------------------------------


def test_keys_and_scopes(running: Running) -> None:
    api, keys = running.api, running.keys
    ev = {"events": [_event("scope-1")]}
    assert check_error(api("POST", "/v1/events", json=ev, key=None), 401)["code"] == "unauthorized"
    check_error(api("POST", "/v1/events", json=ev, key="cl_not-a-real-key"), 401)
    check_error(api("POST", "/v1/events", json=ev, key=keys["read"]), 403)
    assert api("POST", "/v1/events", json=ev, key=keys["ingest"]).status_code == 200
    check_error(api("GET", "/v1/users/u1/recommendations", key=keys["ingest"]), 403)
    assert api("GET", "/v1/users/u1/recommendations", key=keys["read"]).status_code == 200
    check_error(api("POST", "/v1/admin/reload", key=keys["read"]), 403)
    check_error(api("GET", "/v1/dashboard", key=keys["read"]), 403)
    created = api("POST", "/v1/admin/keys", json={"scope": "read"})
    assert created.status_code == 201 and created.json()["key"].startswith("cl_")
    assert api("GET", "/v1/users/u1/recommendations", key=created.json()["key"]).status_code == 200


def test_rate_limit_per_key(running: Running) -> None:
    api, keys = running.api, running.keys
    codes = [api("GET", "/v1/users/u1/recommendations", key=keys["slow"]).status_code for _ in range(4)]
    assert codes[0] == 200 and 429 in codes
    response = api("GET", "/v1/users/u1/recommendations", key=keys["slow"])
    error = check_error(response, 429)
    assert "Rate limit" in error["message"] and int(response.headers["Retry-After"]) >= 1
    # another key is not slowed down by this one
    assert api("GET", "/v1/users/u1/recommendations", key=keys["read"]).status_code == 200


def test_unknown_routes_and_methods(running: Running) -> None:
    check_error(running.api("GET", "/v1/nothing-here"), 404)
    check_error(running.api("PUT", "/v1/events", json={}), 405)


def test_cors_is_off_by_default(running: Running) -> None:
    response = running.api(
        "OPTIONS",
        "/v1/events",
        key=None,
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


# -- recommendations ----------------------------------------------------------------------------


def test_user_recommendations_known_and_unknown(running: Running) -> None:
    api = running.api
    known = api("GET", "/v1/users/u5/recommendations?k=5").json()
    assert len(known["items"]) == 5 and known["sources"][0] == "recommender"
    assert len({i["item_id"] for i in known["items"]}) == 5
    assert known["models"]["recommender"].startswith("v0")
    cold = api("GET", "/v1/users/never-seen/recommendations?k=5").json()
    assert len(cold["items"]) == 5 and "popularity" in cold["sources"]
    check_error(api("GET", "/v1/users/u5/recommendations?k=0"), 422)
    check_error(api("GET", "/v1/users/u5/recommendations?context=cart"), 422)


def test_context_product_and_cart(running: Running) -> None:
    api = running.api
    similar = api("GET", "/v1/items/p3/similar?k=4").json()
    assert len(similar["items"]) == 4 and "p3" not in [i["item_id"] for i in similar["items"]]
    product = api("GET", "/v1/users/u5/recommendations?k=4&context=product&items=p3").json()
    assert product["items"] == similar["items"]
    cart = api("POST", "/v1/recommendations/cart", json={"items": ["p3", "p4"], "k": 4}).json()
    assert len(cart["items"]) == 4 and not {"p3", "p4"} & {i["item_id"] for i in cart["items"]}
    via_user = api("GET", "/v1/users/u5/recommendations?k=4&context=cart&items=p3,p4").json()
    assert via_user["items"] == cart["items"]
    anonymous = api("POST", "/v1/recommendations/cart", json={"items": ["unknown-product"], "k": 3}).json()
    assert len(anonymous["items"]) == 3  # popularity fills what the model cannot
    check_error(api("GET", "/v1/items/no-such-item/similar"), 404)
    check_error(api("POST", "/v1/recommendations/cart", json={"items": []}), 422)


# -- live carts ---------------------------------------------------------------------------------


def test_cart_risk_follows_every_posted_event(running: Running) -> None:
    api = running.api
    events = [
        _event("risk-1", session_id="live-cart", user_id="u7", event_type="view", product_id="p1", price=6.0),
        _event(
            "risk-2",
            session_id="live-cart",
            user_id="u7",
            ts="2026-11-01T10:01:00Z",
            event_type="cart_add",
            product_id="p1",
            price=6.0,
            quantity=2,
        ),
    ]
    assert api("POST", "/v1/events", json={"events": events[:1]}).json()["accepted"] == 1
    first = api("GET", "/v1/carts/live-cart/risk").json()
    assert first["events"] == 1 and first["cart_open"] is False and first["p_abandon"] is None
    assert api("POST", "/v1/events", json={"events": events[1:]}).json()["accepted"] == 1
    risk = api("GET", "/v1/carts/live-cart/risk").json()
    assert risk["events"] == 2 and risk["cart_open"] is True
    assert 0.0 < risk["p_abandon"] < 1.0 and risk["model_version"].startswith("v0")
    # the same features as the predict package's own incremental state (without store context)
    state = SessionState()
    for e in events:
        state.update(e)
    assert risk["cart_value"] == pytest.approx(state.features()["cart_value"]) == 12.0
    late = _event(
        "risk-0", session_id="live-cart", user_id="u7", ts="2026-11-01T09:59:00Z", event_type="view"
    )
    api("POST", "/v1/events", json={"events": [late]})  # out of order: the session is rebuilt in order
    assert api("GET", "/v1/carts/live-cart/risk").json()["events"] == 3
    check_error(api("GET", "/v1/carts/no-such-session/risk"), 404)


def test_decide_runs_the_act_policy_and_logs_once(running: Running) -> None:
    api = running.api
    cart = [
        _event(
            "nba-1", session_id="nba-cart", user_id="u9", event_type="cart_add", product_id="p4", price=9.0
        )
    ]
    assert api("POST", "/v1/events", json={"events": cart}).json()["accepted"] == 1
    shown = api("POST", "/v1/carts/nba-cart/decide?log=false")
    assert shown.status_code == 200, shown.text
    assert shown.json()["logged"] is False
    first = api("POST", "/v1/carts/nba-cart/decide", key=running.keys["read"]).json()
    assert first["logged"] is True and first["already_decided"] is False
    assert 0 < first["propensity"] <= 1 and first["action"] in first["options"]
    again = api("POST", "/v1/carts/nba-cart/decide").json()
    assert again["already_decided"] is True and again["decision_id"] == first["decision_id"]
    check_error(api("POST", "/v1/carts/no-such-cart/decide"), 404)
    check_error(api("POST", "/v1/carts/nba-cart/decide", key=running.keys["ingest"]), 403)


# -- experiments --------------------------------------------------------------------------------


def test_experiment_assignment_is_the_packages_hash(running: Running) -> None:
    api = running.api
    experiment = Experiment("banner", variants=("control", "treatment"))
    for unit in ("u1", "u2", "someone-new"):
        got = api("GET", f"/v1/experiments/banner/assignment?unit={unit}").json()
        assert got["variant"] == assign(experiment, unit).variant and got["logged"] is True
    check_error(api("GET", "/v1/experiments/nope/assignment?unit=u1"), 404)
    check_error(api("GET", "/v1/experiments/banner/assignment"), 422)


def test_experiment_results(running: Running) -> None:
    api = running.api
    result = api("GET", "/v1/experiments/banner/results").json()
    assert {v["name"] for v in result["variants"]} == {"control", "treatment"}
    assert 0.0 <= result["srm_p_value"] <= 1.0
    # every user of the shop is exposed at their first event (the fixture); a test that asks for an
    # assignment before this one (the order differs when tests run in parallel) exposes one more
    shop_users = len({e["user_id"] for e in make_events()})
    assert sum(v["n"] for v in result["variants"]) >= shop_users
    check_error(api("GET", "/v1/experiments/banner/results?metric=nonsense"), 422)
    check_error(api("GET", "/v1/experiments/banner/results", key=running.keys["read"]), 403)


# -- models, erasure ----------------------------------------------------------------------------


def test_train_and_hot_reload(running: Running) -> None:
    api = running.api
    before = api("GET", "/readyz", key=None).json()["models"]["recommender"]["version"]
    trained = api("POST", "/v1/admin/train")
    assert trained.status_code == 200, trained.text
    after = trained.json()["models"]["recommender"]["version"]
    assert int(after[1:]) == int(before[1:]) + 1
    assert api("GET", "/v1/users/u5/recommendations").json()["models"]["recommender"] == after
    # reloads swap one reference: requests in flight during reloads all succeed
    codes: list[int] = []

    def ask() -> None:
        with httpx.Client(base_url=running.server.url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {running.keys['read']}"}
            for _ in range(30):
                codes.append(client.get("/v1/users/u5/recommendations", headers=headers).status_code)

    thread = threading.Thread(target=ask)
    thread.start()
    for _ in range(3):
        reloaded = api("POST", "/v1/admin/reload").json()
        assert reloaded["errors"] == {} and reloaded["models"]["abandonment"]["version"] == after
    thread.join()
    assert codes == [200] * 30


def test_erasure_deletes_a_users_data_with_an_audit_record(running: Running) -> None:
    api = running.api
    events = [_event(f"erase-{i}", user_id="erase-me", session_id="erase-session") for i in range(3)]
    assert api("POST", "/v1/events", json={"events": events}).json()["accepted"] == 3
    assert api("GET", "/v1/experiments/banner/assignment?unit=erase-me").status_code == 200
    before = _stored(running)
    response = api("DELETE", "/v1/users/erase-me")
    assert response.status_code == 200, response.text
    erased = response.json()["erased"]
    assert erased["events"] == 3 and erased["live_sessions"] == 1 and erased["exposures"] == 1
    assert _stored(running) == before - 3
    check_error(api("GET", "/v1/carts/erase-session/risk"), 404)
    check_error(api("DELETE", "/v1/users/erase-me"), 404)
    audit = api("GET", "/v1/admin/audit").json()["records"]
    assert audit[0]["action"] == "erase_user" and audit[0]["details"]["events"] == 3
    assert "erase-me" not in json.dumps(audit)  # the audit keeps a hash, not the id


def test_dashboard_numbers(running: Running) -> None:
    data = running.api("GET", "/v1/dashboard").json()
    steps = {s["step"]: s["sessions"] for s in data["funnel"]}
    assert steps["view"] >= steps["cart_add"] > 0 and steps["purchase"] > 0
    a = data["abandonment"]
    # carts by the one definition (`cartlift summary`); the funnel counts a cart_add only after a view
    assert a["carts"] >= steps["cart_add"] and math.isclose(a["rate"], a["abandoned"] / a["carts"])
    assert (data["store"]["carts"], data["store"]["abandoned_carts"]) == (a["carts"], a["abandoned"])
    assert data["experiments"][0]["experiment"] == "banner"
    decisions = {d["action"]: (d["count"], d["converted"]) for d in data["decisions"]}
    assert decisions["coupon_10"] == (2, 2)  # as seeded (+ live decisions)
    # the "nothing" cart was not bought in its own session, but its customer bought in a later one
    # within the recovery window: bought, as the definitions' recovered cart (a same-session count said 0)
    assert decisions["nothing"][1] == 1
    assert set(data["models"]) == {"recommender", "popularity", "abandonment"}
