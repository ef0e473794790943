"""The commands end to end on a real temporary store and real files, and their --json shapes
(the ones /work/shared/checks/contracts.py reads)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _recommend_data import make_catalog, make_events
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.cli._recommend import demo_step
from cartlift.store import EventStore

runner = CliRunner()


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    return json.loads(out[out.find("{") :])


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A store file with the synthetic shop's events and catalogue (and a taste table)."""
    db = tmp_path / "shop.duckdb"
    events = make_events(seed=1).assign(
        event_id=lambda f: [f"e{i}" for i in range(len(f))],
        product_id=lambda f: f["item_id"],
        ts=lambda f: f["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        quantity="1",
    )
    with EventStore(db) as store:
        store.ingest_records(events.drop(columns=["item_id"]).astype(str))
        store.ingest_products(make_catalog(26).astype(str))
        # the simulator's truth table shape: each user's truly best products
        truth = [(f"u{u}", f"p{i}", r + 1) for u in range(40) for r, i in enumerate(range(u % 4, 24, 4))]
        store.write_table("truth_user_taste", pd.DataFrame(truth, columns=["user_id", "product_id", "rank"]))
    return db


def test_rules_json_shape(tmp_path: Path) -> None:
    baskets = tmp_path / "baskets.csv"
    baskets.write_text("milk,bread\nmilk,bread,eggs\nmilk\nbread,eggs\n")
    doc = _json(
        ["rules", "--baskets", str(baskets), "--min-support", "0.5", "--min-confidence", "0.6", "--json"]
    )
    assert doc["rule_count"] == len(doc["rules"]) == 4
    first = doc["rules"][0]
    assert set(first) >= {"antecedents", "consequents", "support", "confidence", "lift"}
    assert (
        first["antecedents"] == ["eggs"] and first["consequents"] == ["bread"] and first["confidence"] == 1.0
    )


def test_rules_table(tmp_path: Path) -> None:
    baskets = tmp_path / "orders.csv"
    baskets.write_text("order_id,item\n1,milk\n1,bread\n2,milk\n2,bread\n3,tea\n")
    result = runner.invoke(
        app, ["rules", "--baskets", str(baskets), "--min-support", "0.5", "--min-confidence", "0.5"]
    )
    assert result.exit_code == 0, result.output
    assert "2 rules from 3 baskets" in result.stdout


def test_evaluate_yoochoose_json_shape(shared_data: Path, tmp_path: Path) -> None:
    """The contract's command on a slice of the real files (first 3,000 training sessions)."""
    folder = shared_data / "yoochoose_rsc15_100k"
    train = pd.read_csv(folder / "yoochoose-clicks-100k_train_tr.txt", sep="\t")
    test = pd.read_csv(folder / "yoochoose-clicks-100k_train_valid.txt", sep="\t")
    train = train[train["SessionId"].isin(train["SessionId"].unique()[:3000])]
    test = test[
        test["SessionId"].isin(test["SessionId"].unique()[:300]) & test["ItemId"].isin(train["ItemId"])
    ]
    train.to_csv(tmp_path / "tr.txt", sep="\t", index=False)
    test.to_csv(tmp_path / "te.txt", sep="\t", index=False)
    doc = _json(
        [
            "recommend",
            "evaluate",
            "--format",
            "yoochoose",
            "--train",
            str(tmp_path / "tr.txt"),
            "--test",
            str(tmp_path / "te.txt"),
            "--protocol",
            "next-item",
            "--models",
            "sknn,itemknn,popularity",
            "--bootstrap",
            "50",
            "--json",
        ]
    )
    rows = doc["leaderboard"]
    assert {r["model"] for r in rows} == {"sknn", "itemknn", "popularity"}
    for row in rows:
        assert {"model", "HR@20", "MRR@20", "NDCG@10"} <= row.keys()
        assert 0 <= row["MRR@20"] <= row["HR@20"] <= 1
    assert doc["protocol"] == "next-item"
    assert rows[0]["model"] != "popularity"


def test_train_show_and_evaluate_on_the_store(shop: Path) -> None:
    trained = _json(["recommend", "train", "--model", "itemknn", "--db", str(shop), "--json"])
    assert Path(trained["path"]).exists() and trained["users"] == 40
    shown = _json(["recommend", "show", "u1", "--model", "itemknn", "--k", "4", "--db", str(shop), "--json"])
    assert shown["known_user"] and len(shown["recommendations"]) == 4
    assert all({"item_id", "title", "category", "score"} <= r.keys() for r in shown["recommendations"])
    assert shown["recent"] and not {r["item_id"] for r in shown["recent"]} & {
        r["item_id"] for r in shown["recommendations"]
    }
    board = _json(
        [
            "recommend",
            "evaluate",
            "--models",
            "popularity,itemknn",
            "--bootstrap",
            "50",
            "--db",
            str(shop),
            "--json",
        ]
    )
    assert {r["model"] for r in board["leaderboard"]} == {"itemknn", "popularity"}
    assert board["info"]["test_users"] > 0 and "comparison" in board
    plain = runner.invoke(
        app, ["recommend", "evaluate", "--models", "popularity,vsknn", "--bootstrap", "20", "--db", str(shop)]
    )
    assert plain.exit_code == 0, plain.output
    assert "leaderboard (temporal" in plain.stdout


def test_show_a_stranger_trains_on_the_fly(shop: Path) -> None:
    result = runner.invoke(app, ["recommend", "show", "nobody", "--model", "popularity", "--db", str(shop)])
    assert result.exit_code == 0, result.output
    assert "popularity" in result.stdout.lower() or "Popularity" in result.stdout


def test_bad_input_is_one_line_error(shop: Path) -> None:
    result = runner.invoke(app, ["recommend", "evaluate", "--models", "gru4rec", "--db", str(shop)])
    assert result.exit_code == 2
    assert "Unknown model 'gru4rec'" in result.output
    result = runner.invoke(app, ["recommend", "evaluate", "--format", "yoochoose", "--db", str(shop)])
    assert result.exit_code == 2


def test_demo_step(shop: Path, tmp_path: Path) -> None:
    with EventStore(shop, read_only=True) as store:
        result = demo_step(store, tmp_path / "demo")
    assert result["leaderboard"] and {"HR@20", "NDCG@10"} <= result["leaderboard"][0].keys()
    assert (tmp_path / "demo" / "recommend_leaderboard.json").exists()
    taste = result["taste"]
    assert taste["users"] == 40 and 0 < taste["NDCG@10"] <= 1


def test_demo_examples_feed_the_report_without_a_refit(shop: Path, tmp_path: Path) -> None:
    """The leaderboard carries the best model's lists for a few held-out customers: none repeats
    what the customer touched before the split, and the report shows them as they were written."""
    from cartlift.recommend._workflows import demo_leaderboard
    from cartlift.report._loop import recommendations_section

    with EventStore(shop, read_only=True) as store:
        result = demo_leaderboard(store, tmp_path, models=("popularity", "itemknn"), n_bootstrap=20)
        examples = result["examples"]
        assert 1 <= len(examples) <= 3
        for e in examples:
            assert len(e["before"]) >= 2 and len(e["recommended"]) == 5 and e["after"]
            assert not set(e["recommended"]) & set(e["before"])  # seen items are never recommended
        section = recommendations_section(store, artifacts=tmp_path)
    shown = section.tables[-1]
    assert shown.title.endswith("fitted on the training period)")
    assert shown.frame["Customer"].tolist() == [e["user_id"] for e in examples]


def test_event_weights_option(shop: Path, tmp_path: Path) -> None:
    doc = _json(
        [
            "recommend",
            "train",
            "--model",
            "popularity",
            "--weights",
            "view=1,purchase=10",
            "--half-life-days",
            "7",
            "--out",
            str(tmp_path / "pop.npz"),
            "--db",
            str(shop),
            "--json",
        ]
    )
    assert doc["path"].endswith("pop.npz")
    bad = runner.invoke(
        app, ["recommend", "train", "--model", "popularity", "--weights", "view:1", "--db", str(shop)]
    )
    assert bad.exit_code == 2
    assert "TYPE=NUMBER" in bad.output
