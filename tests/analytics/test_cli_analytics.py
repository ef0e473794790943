"""The analytics commands: the --json contracts scripts rely on, plain output, errors, and the demo step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.cli._analytics import demo_step, report_step
from cartlift.store import EventStore

runner = CliRunner()
REES = ("rees46_multicategory_sample", "2019-Oct.csv")


@pytest.fixture(scope="module")
def rees_db(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A closed store file: the commands open it themselves (DuckDB allows one configuration per file and process)."""
    path = tmp_path_factory.mktemp("cli") / "rees.duckdb"
    with EventStore(path) as store:
        store.ingest(shared_data.joinpath(*REES))
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def test_funnel_json_contract(rees_db: str) -> None:
    code, out = run("funnel", "--db", rees_db, "--unit", "session", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert [s["count"] for s in doc["steps"]] == [5066, 118, 65]
    for step in doc["steps"]:
        assert {
            "name",
            "count",
            "conversion_from_previous",
            "conversion_from_first",
            "ci_low",
            "ci_high",
        } <= set(step)


def test_funnel_options_reach_the_engine(rees_db: str) -> None:
    code, out = run(
        "funnel", "--db", rees_db, "-s", "view,purchase", "--unit", "user", "-w", "10m",
        "-x", "cart_add@1-2", "-b", "price_band", "--from", "2019-10-01", "--to", "2019-10-01", "--json",
    )  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    assert [s["name"] for s in doc["steps"]] == ["view", "purchase"]
    assert doc["window_seconds"] == 600 and doc["unit"] == "user" and doc["excluded"] > 0
    assert doc["breakdown"]["column"] == "price_band"
    code, _ = run("funnel", "--db", rees_db, "-b", "brand")
    assert code == 0


def test_bad_options_give_one_line_errors(rees_db: str) -> None:
    result = runner.invoke(app, ["funnel", "--db", rees_db, "--order", "sideways"])
    assert result.exit_code == 2
    assert "'order' parameter of Funnel" in result.output and "Traceback" not in result.output


def test_clv_summary_json_contract(shared_data: Path) -> None:
    code, out = run(
        "clv", "--summary", str(shared_data / "cdnow_lifetimes" / "cdnow_customers_summary.csv"), "--json"
    )
    assert code == 0, out
    doc = json.loads(out)
    assert {k: round(doc["bgnbd"][k], 4) for k in ("r", "alpha", "a", "b")} == {
        "r": 0.2426, "alpha": 4.4135, "a": 0.7929, "b": 2.4258,
    }  # fmt: skip
    assert doc["gamma_gamma"] is None  # this summary has no spend column


def test_clv_mapped_summary_and_transactions(shared_data: Path, tmp_path: Path) -> None:
    cdnow = shared_data / "cdnow_lifetimes"
    code, out = run(
        "clv", "--summary", str(cdnow / "cdnow_customers_summary_with_transactions.csv"),
        "--frequency-col", "x", "--recency-col", "t_x", "--monetary-col", "zbar", "--json",
    )  # fmt: skip
    assert code == 0, out
    gg = json.loads(out)["gamma_gamma"]
    assert (round(gg["p"], 2), round(gg["q"], 2), round(gg["v"], 1)) == (6.25, 3.74, 15.4)
    saved = tmp_path / "clv.csv"
    code, out = run(
        "clv", "--transactions", str(cdnow / "CDNOW_sample.txt"), "--customer-col", "column1",
        "--date-col", "column2", "--value-col", "column4", "--observation-end", "1997-09-30",
        "--out", str(saved), "--json",
    )  # fmt: skip
    assert code == 0, out
    doc = json.loads(out)
    assert doc["source"] == "transactions" and doc["customers"] == 2357
    assert round(doc["bgnbd"]["r"], 3) == 0.243 and doc["gamma_gamma"] is not None
    assert saved.read_text().count("\n") == 2358


def test_clv_that_cannot_converge_says_why(rees_db: str) -> None:
    result = runner.invoke(app, ["clv", "--db", rees_db, "--json"])
    assert result.exit_code == 2
    assert "no customer bought twice" in result.output


def test_abandoned_carts_and_segments_json(rees_db: str) -> None:
    code, out = run("abandoned-carts", "--db", rees_db, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["carts"] >= doc["abandoned"] > 0 and {f["feature"] for f in doc["features"]} >= {
        "cart_value",
        "device",
    }
    code, out = run("segments", "--db", rees_db, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["rfm"]["segments"] and doc["clusters"]["k"] >= 2 and doc["price_sensitivity"]


def test_report_command_writes_the_file(rees_db: str, tmp_path: Path) -> None:
    out_file = tmp_path / "r.html"
    code, out = run("report", "--db", rees_db, "--out", str(out_file), "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["out"] == str(out_file) and out_file.stat().st_size == doc["bytes"]
    assert "Funnel" in doc["sections"]


def test_demo_steps_return_headlines_and_write_the_report_last(tmp_path: Path) -> None:
    simulate = pytest.importorskip("cartlift.simulate").simulate
    with EventStore(tmp_path / "demo.duckdb") as store:
        simulate(n_users=400, n_days=10, random_state=3).write_to(store)
        got = demo_step(store, tmp_path / "out")
        assert not Path(got["report"]).exists()  # the report comes last, after every step
        written = report_step(store, tmp_path / "out")
    assert Path(got["report"]).is_file() and written["report"] == got["report"]
    assert written["sections"][0] == "Summary"
    assert [s["name"] for s in got["funnel"]] == ["view", "cart_add", "checkout", "purchase"]
    assert 0 < got["cart_abandonment_rate"] < 1 and got["carts"] > 0
    json.dumps(got)  # plain types, ready for `cartlift demo --json`
