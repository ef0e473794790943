"""The dashboard in headless Chromium: its charts show the numbers the API returns, and update."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _serve_helpers import Api, Running

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


@pytest.fixture
def page(running: Running) -> Iterator[Any]:
    """A Chromium page that may only talk to the service (anything else is blocked and recorded)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); `.ci/run` installs it")
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})

            def guard(route: Any) -> None:
                if route.request.url.startswith(running.server.url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            context.route("**/*", guard)
            page = context.new_page()
            yield page
            assert outside == [], f"the dashboard reached outside the service: {outside}"
        finally:
            browser.close()


def _charts(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => {
                const d = (id) => document.getElementById(id).data;
                return {
                    funnel: {x: d("funnel")[0].x, y: d("funnel")[0].y},
                    rate: d("abandonment")[0].value, value: d("abandonment")[1].value,
                    risk: {y: d("risk")[0].y, x: d("risk")[0].x},
                    decisions: {x: d("decisions")[0].x, n: d("decisions")[0].y, converted: d("decisions")[1].y},
                    experiments: d("experiments").map(t => ({name: t.name, x: t.x, y: t.y})),
                    models: Array.from(document.querySelectorAll("#models tbody tr"))
                        .map(tr => Array.from(tr.children).map(td => td.textContent)),
                    events: document.getElementById("kpi-events").textContent,
                };
            }"""
        )
    )


@pytest.mark.slow
def test_dashboard_charts_show_the_api_numbers_and_update(
    running: Running, page: Any, tmp_path: Path
) -> None:
    api: Api = running.api
    page.goto(running.server.url + "/")
    page.fill("#key", running.keys["admin"])
    page.click("button[type=submit]")
    page.wait_for_function("window.cartliftRefreshes >= 1", timeout=30_000)
    shown = _charts(page)
    data = api("GET", "/v1/dashboard").json()

    assert shown["funnel"] == {
        "x": [s["step"] for s in data["funnel"]],
        "y": [s["sessions"] for s in data["funnel"]],
    }
    assert shown["rate"] == pytest.approx(data["abandonment"]["rate"] * 100)
    assert shown["value"] == pytest.approx(data["abandonment"]["abandoned_value"])
    assert shown["decisions"] == {
        "x": [d["action"] for d in data["decisions"]],
        "n": [d["count"] for d in data["decisions"]],
        "converted": [d["converted"] for d in data["decisions"]],
    }
    assert shown["experiments"] == [
        {
            "name": e["experiment"],
            "x": [v["name"] for v in e["variants"]],
            "y": [v["mean"] for v in e["variants"]],
        }
        for e in data["experiments"]
    ]
    assert sorted(row[0] for row in shown["models"]) == sorted(data["models"])
    assert all(row[2] == data["models"][row[0]]["version"] for row in shown["models"])
    assert shown["events"] == f"{data['events']:,}"

    # a new cart arrives: within one refresh the funnel and the carts at risk show it
    carts_before = shown["funnel"]["y"][1]
    event = {
        "event_id": "dash-1",
        "ts": "2026-11-01T12:00:00Z",
        "user_id": "u3",
        "session_id": "dash-cart",
        "event_type": "cart_add",
        "product_id": "p2",
        "price": 7.0,
        "quantity": 3,
    }
    assert api("POST", "/v1/events", json={"events": [event]}).json()["accepted"] == 1
    page.wait_for_function(
        f"document.getElementById('funnel').data[0].y[1] === {carts_before + 1}", timeout=15_000
    )
    shown = _charts(page)
    risk = api("GET", "/v1/carts/dash-cart/risk").json()
    assert "dash-cart" in shown["risk"]["y"]
    assert shown["risk"]["x"][shown["risk"]["y"].index("dash-cart")] == pytest.approx(risk["p_abandon"])
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


@pytest.mark.slow
def test_dashboard_refuses_a_wrong_key(running: Running, page: Any) -> None:
    page.goto(running.server.url + "/")
    page.fill("#key", "cl_wrong")
    page.click("button[type=submit]")
    page.wait_for_selector("#login:not(.hidden)")
    assert "unknown or revoked" in page.text_content("#status")
