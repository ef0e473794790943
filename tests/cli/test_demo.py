"""`cartlift demo` runs the whole loop on a small simulated store and writes a report."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.store import EventStore


def test_demo_runs_every_step_and_writes_the_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path), "--users", "1500", "--days", "14", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["simulate"]["loaded"]["events"]["quarantined"] == 0
    assert out["summary"]["events"] == out["simulate"]["events"]
    # the funnel the report shows starts with every session and narrows
    counts = [s["count"] for s in out["analytics"]["funnel"]]
    assert counts[0] == out["summary"]["sessions"]
    assert counts == sorted(counts, reverse=True)
    assert out["recommend"]["leaderboard"][0]["NDCG@10"] > 0
    assert 0.5 < out["abandonment"]["roc_auc"] <= 1
    assert 0 <= out["experiments"]["p_value"] <= 1
    shares = out["act"]["share_of_oracle"]
    assert shares["oracle"] == 1.0
    assert shares["profit"] > max(shares["nothing"], shares["coupon_all"])
    sent = out["deliver"]
    assert sent["scheduled"] > 0 and sent["sent"] > 0
    assert sent["sent"] + sent["cancelled"] + sent["dead"] <= sent["scheduled"] + sent["too_late"]
    files = list(Path(sent["outbox"]).glob("*.eml")) + list(Path(sent["outbox"]).glob("*.sms.txt"))
    assert len(files) == sent["sent"]
    assert (
        sent["recovered_anyway"] <= sent["recovered"]
        and sent["clicked"] == sent["recovered"] - sent["recovered_anyway"]
    )
    # every customer a message moved clicked and bought at once: each such order is credited to its click
    # (their later orders within the click window are credited to the click too)
    credited = out["attribution"]
    assert credited["messages"]["sent"] == sent["sent"]
    assert credited["attributed"]["click"]["orders"] >= sent["clicked"]
    with EventStore(Path(out["store"]), read_only=True) as store:
        recovered = store.query(
            "SELECT touch, count(*) AS n FROM attributions WHERE credited AND order_key LIKE 'recovered-%' GROUP BY 1"
        )
    assert recovered.to_dict("records") == [{"touch": "click", "n": sent["clicked"]}]
    report = Path(out["analytics"]["report"])
    assert report.exists() and out["report"]["report"] == str(report)
    # written last, it holds every part of the loop, the summary first
    sections = out["report"]["sections"]
    assert sections[0] == "Summary"
    for part in ("Recommendations", "Next best action", "Delivery", "Attribution: orders after a message",
                 "Impact against the holdout"):  # fmt: skip
        assert part in sections
    assert sections.index("Recommendations") < sections.index("Next best action") < sections.index("Delivery")
    html = report.read_text()
    assert "Plotly.newPlot" in html or "plotly" in html.lower()
    # self-contained: no script or stylesheet is fetched (plotly.js is inlined)
    assert "<script src=" not in html
    assert '<link rel="stylesheet" href="http' not in html
    # running it again starts from a fresh store: same seed, same numbers
    again = json.loads(
        CliRunner()
        .invoke(app, ["demo", "--out", str(tmp_path), "--users", "1500", "--days", "14", "--json"])
        .stdout
    )
    assert again["summary"] == out["summary"]
    assert {k: again["deliver"][k] for k in ("scheduled", "sent", "clicked", "recovered")} == {
        k: sent[k] for k in ("scheduled", "sent", "clicked", "recovered")
    }
    assert len(list(Path(sent["outbox"]).iterdir())) == sent["sent"]  # the outbox starts empty too


def test_highlights_show_money_with_its_currency() -> None:
    """The summary table's amounts carry the store's currency, as the report's do."""
    from rich.console import Console

    from cartlift.cli._demo import highlights

    results = {
        "summary": {"sessions_with_cart": 10, "cart_abandonment_rate": 0.5, "abandoned_cart_value": 1234.5},
        "attribution": {
            "attributed": {"orders": 3, "revenue": 99.5, "click": {"orders": 1}, "view": {"orders": 2}},
            "messages": {"sent": 4},
            "currency": "EUR",
        },
    }
    console = Console(width=200, record=True)
    console.print(highlights(results))
    text = console.export_text()
    assert "(1,234 USD of value)" in text  # no currency in the summary: the setting's default
    assert "3 orders (99.50 EUR) came after a message" in text
