"""The dashboard in headless Chromium: its charts show the numbers the API returns, and update."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _serve_helpers import Api, Running, Server

from cartlift.serve import create_key_in_store

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
def page_factory() -> Iterator[Any]:
    """Open a Chromium page that may only talk to the given server URL."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); `.ci/run` installs it")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        outside: list[str] = []

        def open_page(url: str) -> Any:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route(
                "**/*",
                lambda r: (
                    r.continue_()
                    if r.request.url.startswith(url)
                    else (outside.append(r.request.url), r.abort())
                ),
            )
            return context.new_page()

        try:
            yield open_page
            assert outside == [], f"the dashboard reached outside the service: {outside}"
        finally:
            browser.close()


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
                const rows = (id) => Array.from(document.querySelectorAll("#" + id + " tbody tr"))
                    .map(tr => Array.from(tr.children).map(td => td.textContent));
                const keyed = Object.fromEntries(Array.from(document.querySelectorAll("#store tbody tr"))
                    .map(tr => [tr.dataset.key, tr.children[1].textContent]));
                const shown = (id) => !document.getElementById(id).classList.contains("hidden");
                return {
                    funnel: d("funnel") ? {x: d("funnel")[0].x, y: d("funnel")[0].y} : null,
                    store: keyed,
                    risk: rows("risk"),
                    impact: d("impact") && shown("impact") ? d("impact")[0].y[0] : null,
                    decisions: d("decisions") && shown("decisions")
                        ? {x: d("decisions")[0].x, n: d("decisions")[0].y, converted: d("decisions")[1].y} : null,
                    experiments: rows("experiments"),
                    attribution: rows("attribution"),
                    recs: rows("recs"),
                    models: rows("models"),
                    events: document.getElementById("kpi-events").textContent,
                    empty: Array.from(document.querySelectorAll(".empty:not(.hidden)")).map(p => p.parentElement.querySelector("h2").textContent + ": " + p.textContent),
                    panels: Array.from(document.querySelectorAll("#board section")).map(s => s.querySelector("h2").textContent),
                };
            }"""
        )
    )


def _cli(db: Path, *args: str) -> dict[str, Any]:
    from typer.testing import CliRunner

    from cartlift.cli import app

    result = CliRunner().invoke(app, [*args, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


@pytest.mark.slow
def test_dashboard_panels_show_the_api_and_cli_numbers_and_update(
    running: Running, page: Any, tmp_path: Path, trained_store: Path
) -> None:
    api: Api = running.api
    # the CLI on a copy of the same store (the server holds its own copy open)
    shutil.copy(trained_store / "store.duckdb", tmp_path / "cli.duckdb")
    summary = _cli(tmp_path / "cli.duckdb", "summary")
    cli_funnel = _cli(tmp_path / "cli.duckdb", "funnel")
    cli_impact = _cli(tmp_path / "cli.duckdb", "impact")
    cli_attribution = _cli(tmp_path / "cli.duckdb", "attribution")
    # a list shown, so the recommendations panel has a row (the log is written within about a second)
    api("GET", "/v1/users/u5/recommendations?k=5").raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        logged = (api("GET", "/v1/attribution").json().get("recommendations") or {}).get("lists_shown")
        if logged:
            break
        time.sleep(0.5)
    page.goto(running.server.url + "/")
    page.fill("#key", running.keys["admin"])
    page.click("button[type=submit]")
    page.wait_for_function("window.cartliftRefreshes >= 1", timeout=30_000)
    shown = _charts(page)
    data = api("GET", "/v1/dashboard").json()
    # every panel draws: a chart or table, or its one-line note, never bare axes
    assert shown["panels"] == [
        "The store", "Funnel", "Carts at risk now", "Incremental profit against the holdout",
        "Decisions and outcomes", "Messages", "Orders after a message", "Sales after a recommendation",
        "Experiments", "Models",
    ]  # fmt: skip
    # the funnel: the dashboard's = the API's = the CLI's
    assert shown["funnel"] == {
        "x": [s["step"] for s in data["funnel"]],
        "y": [s["sessions"] for s in data["funnel"]],
    }
    assert shown["funnel"] == {
        "x": [s["name"] for s in cli_funnel["steps"]],
        "y": [s["count"] for s in cli_funnel["steps"]],
    }
    # carts and money: the dashboard's = the API's = `cartlift summary`'s
    store = data["store"]
    assert (store["carts"], store["abandoned_carts"]) == (
        summary["sessions_with_cart"],
        summary["abandoned_carts"],
    )
    assert store["abandonment_rate"] == pytest.approx(summary["cart_abandonment_rate"])
    assert (store["revenue"], store["orders"]) == (summary["revenue"], summary["orders"])
    assert shown["store"]["carts"] == f"{summary['sessions_with_cart']:,}"
    assert shown["store"]["abandonment_rate"].startswith(f"{100 * summary['cart_abandonment_rate']:.1f} %")
    assert shown["store"]["revenue"] == f"{summary['revenue']:,.2f} {summary['currency']}"
    assert shown["store"]["orders"] == f"{summary['orders']:,}"
    # the impact: the dashboard's = GET /v1/impact's = `cartlift impact`'s
    impact = api("GET", "/v1/impact").json()
    assert impact["carts"] == cli_impact["carts"] and impact["holdout_share"] == cli_impact["holdout_share"]
    assert impact["incremental_profit"] == pytest.approx(cli_impact["incremental_profit"])
    decided = any(a["action"] != "(not decided)" for a in impact["by_action"])
    if decided and impact["incremental_profit"]["estimate"] is not None:
        assert shown["impact"] == pytest.approx(impact["incremental_profit"]["estimate"])
    else:  # nothing decided yet: the panel says so rather than plot noise
        assert any(e.startswith("Incremental profit") for e in shown["empty"])
    assert shown["decisions"] == {
        "x": [d["action"] for d in data["decisions"]],
        "n": [d["count"] for d in data["decisions"]],
        "converted": [d["converted"] for d in data["decisions"]],
    }
    # attribution: the dashboard's = the API's = `cartlift attribution`'s (a store without an outbox says so)
    if data["attribution"] is None or not data["attribution"]["messages"]["sent"]:
        assert any(e.startswith("Orders after a message") for e in shown["empty"])
        assert cli_attribution["attributed"]["orders"] == 0
    else:
        got, want = data["attribution"]["attributed"], cli_attribution["attributed"]
        assert got["orders"] == want["orders"] and got["revenue"] == pytest.approx(want["revenue"])
        assert [r[:3] for r in shown["attribution"]] == [
            [r["action"], r["channel"], f"{r['sent']:,}"] for r in data["attribution"]["by_action"]
        ]
    # recommendations: one row per context where lists were shown, as the API counts them
    recs = data["attribution"]["recommendations"]
    assert recs["lists_shown"] >= 1
    assert [r[:2] for r in shown["recs"]] == [[r["context"], f"{r['lists']:,}"] for r in recs["by_context"]]
    # experiments: one row per variant, with the lift's interval and a verdict
    expected = [(e["experiment"], v["name"]) for e in data["experiments"] for v in e["variants"]]
    assert [(r[0], r[1]) for r in shown["experiments"] if r[1] != "—"] == expected
    assert sorted(row[0] for row in shown["models"]) == sorted(data["models"])
    assert all(row[2] == data["models"][row[0]]["version"] for row in shown["models"])
    assert shown["events"] == f"{data['events']:,}"

    # a new cart arrives (a view, then the add: the funnel counts steps in order, as the CLI does):
    # within one refresh the funnel and the carts at risk show it, with its value and customer
    carts_before = shown["funnel"]["y"][1]
    base = {"user_id": "u3", "session_id": "dash-cart", "product_id": "p2", "price": 7.0}
    events = [
        {**base, "event_id": "dash-0", "ts": "2026-11-01T11:59:00Z", "event_type": "view", "quantity": 1},
        {**base, "event_id": "dash-1", "ts": "2026-11-01T12:00:00Z", "event_type": "cart_add", "quantity": 3},
    ]
    assert api("POST", "/v1/events", json={"events": events}).json()["accepted"] == 2
    page.wait_for_function(
        f"document.getElementById('funnel').data[0].y[1] === {carts_before + 1}", timeout=15_000
    )
    shown = _charts(page)
    risk = api("GET", "/v1/carts/dash-cart/risk").json()
    row = next(r for r in shown["risk"] if r[0] == "dash-cart")
    assert row[1] == "u3" and row[2].startswith("21.00 ")
    assert row[3] == ("no model" if risk["p_abandon"] is None else f"{risk['p_abandon']:.2f}")
    assert row[4] == "not decided yet"
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


@pytest.mark.slow
def test_an_empty_store_shows_no_data_yet_in_every_panel(page_factory: Any, tmp_path: Path) -> None:
    from cartlift.store import EventStore

    db = tmp_path / "empty.duckdb"
    EventStore(db).close()
    key = create_key_in_store(str(db), scope="admin")[0]
    with Server(str(db), tmp_path / "server.log") as server:
        page = page_factory(server.url)
        page.goto(server.url + "/")
        page.fill("#key", key)
        page.click("button[type=submit]")
        page.wait_for_function("window.cartliftRefreshes >= 1", timeout=30_000)
        shown = _charts(page)
        # every panel says in one line why it is empty; no chart is drawn with empty axes
        assert {e.split(":")[0] for e in shown["empty"]} == set(shown["panels"])
        assert page.evaluate("document.querySelectorAll('.main-svg').length") == 0
        page.screenshot(path=str(tmp_path / "dashboard-empty.png"), full_page=True)


@pytest.mark.slow
def test_dashboard_refuses_a_wrong_key(running: Running, page: Any) -> None:
    page.goto(running.server.url + "/")
    page.fill("#key", "cl_wrong")
    page.click("button[type=submit]")
    page.wait_for_selector("#login:not(.hidden)")
    assert "unknown or revoked" in page.text_content("#status")
