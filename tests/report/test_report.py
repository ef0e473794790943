"""The report: the Section API, a self-contained file, and charts that really draw in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from cartlift.analytics import funnel
from cartlift.errors import CartliftWarning, DataError, InvalidParameterError
from cartlift.report import (
    Section,
    Table,
    analytics_sections,
    collect_sections,
    funnel_sections,
    render_report,
    write_report,
)
from cartlift.store import EventStore

REES = ("rees46_multicategory_sample", "2019-Oct.csv")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def rees(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    with EventStore(tmp_path_factory.mktemp("report") / "rees.duckdb") as store:
        store.ingest(shared_data.joinpath(*REES))
        yield store


def test_section_api_validates_and_wraps() -> None:
    frame = pd.DataFrame({"a": [1]})
    s = Section("RFM segments", figures=[go.Figure()], tables=[frame], notes="one note")
    assert s.anchor == "rfm-segments"
    assert isinstance(s.tables[0], Table) and s.notes == ("one note",)
    with pytest.raises(InvalidParameterError, match="non-empty title"):
        Section("  ")
    with pytest.raises(InvalidParameterError, match="figures must be plotly Figures"):
        Section("x", figures=["not a figure"])
    with pytest.raises(InvalidParameterError, match="pandas DataFrame"):
        Table([1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"list of cartlift\.report\.Section"):
        render_report(["a section?"])  # type: ignore[list-item]


def test_report_is_self_contained_and_escapes_text(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    sections = [
        Section(
            "Same",
            figures=[go.Figure(go.Bar(x=[evil], y=[1]))],
            tables=[pd.DataFrame({"v": [evil]})],
            notes=[evil],
        ),
        Section("Same", tables=[Table(pd.DataFrame({"n": range(80)}), max_rows=10, formats={"n": ",d"})]),
    ]
    path = write_report(sections, tmp_path / "deep" / "r.html", title="T & C")
    text = path.read_text(encoding="utf-8")
    # plotly.js is inline: no script or stylesheet is fetched from anywhere
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=\"?https?:", text)
    assert "Plotly.newPlot" in text and len(text) > 3_000_000
    assert evil not in text.split("Plotly.newPlot")[0].split("</head>")[1]  # escaped in notes and tables
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "T &amp; C" in text
    assert 'id="same"' in text and 'id="same-2"' in text  # repeated titles still get their own anchors
    assert "70 more rows not shown" in text


def test_analytics_sections_on_rees46(rees: EventStore) -> None:
    sections = analytics_sections(rees)
    titles = [s.title for s in sections]
    assert titles == [
        "Funnel",
        "Conversion trend",
        "Time to convert",
        "Funnel by category",
        "Cart abandonment",
        "RFM segments",
        "Customer clusters",
        "Customer lifetime value",
    ]
    by = dict(zip(titles, sections, strict=True))
    steps = by["Funnel"].tables[0].frame
    assert steps["sessions"].tolist() == [s.count for s in funnel(rees).steps]
    # the segments in words with their value, and every clustering method compared
    segs, methods = (t.frame for t in by["Customer clusters"].tables)
    assert segs["description"].str.contains("% of customers: ").all() and segs[
        "revenue"
    ].sum() == pytest.approx(1)
    assert {m.removesuffix(" (kept)") for m in methods["method"]} == {"kmeans", "hdbscan", "som"}
    assert methods["method"].str.endswith("(kept)").sum() == 1
    # a 3-hour sample has no repeat buyers: CLV says why instead of failing the report
    assert not by["Customer lifetime value"].figures
    assert "no customer bought twice" in by["Customer lifetime value"].notes[0]

    # a part that cannot be built for this store says why instead of failing the report
    def unavailable(store: EventStore) -> list[Section]:
        raise DataError("no experiment has exposures yet")

    with pytest.warns(CartliftWarning, match="experiments part of the report could not be built"):
        collected = collect_sections(
            rees, parts=[("analytics", analytics_sections), ("experiments", unavailable)]
        )
    assert [s.title for s in collected] == [*titles, "experiments (not available)"]


def test_funnel_sections_without_breakdown_or_conversions(rees: EventStore) -> None:
    nothing = funnel(rees, ["view", "purchase"], start="2030-01-01")
    titles = [s.title for s in funnel_sections(nothing)]
    assert titles == ["Funnel"]  # no trend, no time to convert, no breakdown to show


def _plots(dom: str) -> list[str]:
    """The DOM of each plotly container, from its opening tag to the next container."""
    starts = [m.start() for m in re.finditer(r'<div[^>]*class="[^"]*js-plotly-plot', dom)]
    return [dom[a:b] for a, b in zip(starts, [*starts[1:], len(dom)], strict=True)]


@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install -y chromium)"
)
def test_report_renders_its_charts_in_headless_chromium(rees: EventStore, tmp_path: Path) -> None:
    sections = analytics_sections(rees)
    n_figures = sum(len(s.figures) for s in sections)
    page = write_report(sections, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    base = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=15000",  # plotly draws after load: let (virtual) time pass first
    ]
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [*base, f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    plots = _plots(dom)
    assert n_figures >= 6
    assert len(plots) == n_figures, "every figure became a plotly plot"
    for plot in plots:
        assert 'class="main-svg"' in plot
        assert re.search(r'<g class="trace[ "]', plot), "a plot without drawn traces"
    subprocess.run(
        [
            *base,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            "--window-size=1400,2400",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    pixels = np.asarray(pytest.importorskip("PIL.Image").open(shot).convert("RGB"), dtype=int)
    non_white = float((pixels.min(axis=2) < 240).mean())
    blue = int((np.abs(pixels - np.array([37, 99, 235])) < 20).all(axis=2).sum())
    assert non_white > 0.03, "the screenshot is (nearly) blank"
    assert blue > 2000, "no bars in the charts' blue were drawn"


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install -y chromium)"
)
def test_the_demo_report_draws_every_section_in_headless_chromium(tmp_path: Path) -> None:
    # the demo writes the report last: a summary first, then every part of the loop
    from typer.testing import CliRunner

    from cartlift.cli import app

    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path), "--users", "1500", "--days", "14", "--json"]
    )
    assert result.exit_code == 0, result.output
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto((tmp_path / "report.html").resolve().as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0", timeout=60_000)
            page.wait_for_timeout(2_000)
            sections = page.evaluate(
                """() => Array.from(document.querySelectorAll("main section")).map(s => ({
                    title: s.querySelector("h2").textContent,
                    plots: s.querySelectorAll(".js-plotly-plot").length,
                    drawn: Array.from(s.querySelectorAll(".js-plotly-plot")).filter(p => p.querySelector("g.trace, g.trace.bars, .indicatorlayer g")).length,
                    tables: s.querySelectorAll("table").length,
                    notes: s.querySelectorAll(".notes p").length,
                    overflow: Array.from(s.querySelectorAll("table")).some(t => t.getBoundingClientRect().right > window.innerWidth),
                    raw: Array.from(s.querySelectorAll("th")).map(th => th.textContent).filter(t => /^[a-z]+_[a-z_]+$/.test(t)),
                }))"""
            )
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    titles = [s["title"] for s in sections]
    assert titles[0] == "Summary"
    for part in ("Funnel", "Cart abandonment", "Recommendations", "Abandonment prediction", "Next best action",
                 "Delivery", "Attribution", "Impact against the holdout"):  # fmt: skip
        assert any(t.startswith(part) for t in titles), part
    for s in sections:
        # every section draws: each chart has traces, and a section without data says why in a line
        assert s["plots"] == s["drawn"], s
        assert s["plots"] or s["tables"] or s["notes"], s
        assert not s["overflow"], f"a table runs off the page in {s['title']}"
        assert not s["raw"], f"raw column names in {s['title']}: {s['raw']}"
