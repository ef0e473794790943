"""`GET /v1/audiences/{name}`: the audience export for an e-mail tool, over a real server."""

from __future__ import annotations

from _serve_helpers import Running, check_error

from cartlift.audiences import COLUMNS


def test_audience_pages_and_erasure(running: Running) -> None:
    api = running.api
    first = api("GET", "/v1/audiences/all?limit=1000")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["columns"] == list(COLUMNS) and body["customers"] == len(body["rows"]) > 50
    assert all(set(row) == set(COLUMNS) for row in body["rows"])
    # no contacts table in this store: nobody gets an address
    assert all(row["email"] is None for row in body["rows"])
    page = api("GET", "/v1/audiences/all?limit=10&offset=5").json()
    assert [r["customer_id"] for r in page["rows"]] == [r["customer_id"] for r in body["rows"][5:15]]
    segment = next(r["rfm_segment"] for r in body["rows"] if r["rfm_segment"])
    part = api("GET", f"/v1/audiences/{segment}").json()
    assert part["rows"] and all(r["rfm_segment"] == segment for r in part["rows"])
    # an erased customer is gone from the next answer, although the audience was just built
    gone = body["rows"][0]["customer_id"]
    assert api("DELETE", f"/v1/users/{gone}").status_code == 200
    after = api("GET", "/v1/audiences/all?limit=1000").json()
    assert gone not in {r["customer_id"] for r in after["rows"]}
    assert after["customers"] == body["customers"] - 1


def test_audience_errors(running: Running) -> None:
    api = running.api
    check_error(api("GET", "/v1/audiences/all", key=running.keys["read"]), 403)
    check_error(api("GET", "/v1/audiences/Nobody"), 404)
    check_error(api("GET", "/v1/audiences/all?limit=0"), 422)
