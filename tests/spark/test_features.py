"""Cart features, customer-history features and the CLV summary on Spark equal the DuckDB path's.

Both engines run one SQL definition (`cartlift.predict.cart_features_sql`, the CLV summary of
`cartlift.analytics`); these tests check the Spark rewrite gives the same rows and values on the
REES46 sample, a simulated store and the CDNOW transactions. Slow (local Spark): ``make test-slow``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartlift.analytics import clv_from_summary, read_transactions, summary_from_store
from cartlift.cli import app
from cartlift.errors import DataError, InvalidParameterError
from cartlift.predict import FEATURE_NAMES, cart_features, read_cart_features
from cartlift.predict._batch import cart_features_sql
from cartlift.spark import (
    read_events,
    read_products,
    spark_cart_features,
    spark_clv_summary,
    to_spark_sql,
)
from cartlift.store import EventStore

pytestmark = [pytest.mark.spark, pytest.mark.slow]
runner = CliRunner()


def _products(spark: Any, db: Path, tmp_path: Path) -> Any:
    """The store's catalog exported as Parquet, read by Spark."""
    with EventStore(db, read_only=True) as store:
        store.export("products", tmp_path / "products.parquet")
    return read_products(spark, tmp_path / "products.parquet")


def test_the_spark_rewrite_only_touches_dialect() -> None:
    sql = cart_features_sql("cart_events", 24.0, None)
    spark_sql = to_spark_sql(sql)
    assert "IGNORE NULLS)" not in spark_sql and "arg_min(" not in spark_sql
    assert "last_value(device) IGNORE NULLS OVER w" in spark_sql
    # nothing else changes: undoing the rewrites gives the DuckDB text back
    undone = spark_sql.replace("min_by(", "arg_min(")
    for name in ("cents", "device", "channel"):
        undone = undone.replace(f"last_value({name}) IGNORE NULLS", f"last_value({name} IGNORE NULLS)")
    assert undone == sql


def test_cart_features_equal_on_rees46(spark: Any, rees_parquet: Path, tmp_path: Path) -> None:
    with EventStore(rees_parquet.parent / "rees.duckdb", read_only=True) as store:
        expected = cart_features(store, moments="cart_events")
    products = _products(spark, rees_parquet.parent / "rees.duckdb", tmp_path)
    got = spark_cart_features(read_events(spark, rees_parquet), products, moments="cart_events")
    assert len(expected) > 100
    assert expected["cart_price_ratio"].notna().all()  # the catalog's category medians are used
    # the same rows in the same order, dtypes included; floats to 1e-9 (most are bit-identical)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=0)


def test_cart_and_customer_features_equal_on_a_simulated_store(
    spark: Any, sim_db: Path, sim_parquet: Path, tmp_path: Path
) -> None:
    with EventStore(sim_db, read_only=True) as store:
        expected = cart_features(store, moments="cart_events", window_hours=24.0)
    out = tmp_path / "features"
    got = spark_cart_features(
        read_events(spark, sim_parquet),
        _products(spark, sim_db, tmp_path),
        moments="cart_events",
        window_hours=24.0,
        out=out,
    )
    # the customer history is not trivial here: returning customers, earlier buys and carts
    assert expected["cust_past_sessions"].max() > 5 and (expected["cust_rfm_score"] > 0).sum() > 10
    assert expected["cart_items_carted_before"].sum() > 0 and 0 < expected["abandoned"].mean() < 1
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=0)
    exact = [c for c in FEATURE_NAMES if c not in ("device", "channel")]
    assert np.array_equal(got[exact].to_numpy(), expected[exact].to_numpy(), equal_nan=True)
    # the Parquet folder Spark wrote reads back as the same table
    pd.testing.assert_frame_equal(read_cart_features(out), expected, check_exact=False, rtol=1e-9, atol=0)


def test_bad_arguments_are_refused_before_any_spark_job(spark: Any, sim_parquet: Path) -> None:
    events = read_events(spark, sim_parquet)
    with pytest.raises(InvalidParameterError, match="moments"):
        spark_cart_features(events, moments="every_click")
    with pytest.raises(InvalidParameterError, match="window_hours"):
        spark_cart_features(events, window_hours=-1.0)
    with pytest.raises(DataError, match="No sessions given"):
        spark_cart_features(events, sessions=[])
    with pytest.raises(InvalidParameterError, match="time_unit"):
        spark_clv_summary(events, time_unit="months")
    with pytest.raises(DataError, match="lack user_id"):
        spark_clv_summary(events.drop("user_id"))


def test_optional_event_columns_may_be_missing(
    spark: Any, sim_db: Path, sim_parquet: Path, tmp_path: Path
) -> None:
    with EventStore(sim_db, read_only=True) as store:
        expected = cart_features(store, moments="last_event")
    # a file without device and channel: those two features are unknown, every other is the same
    events = read_events(spark, sim_parquet).drop("device", "channel", "order_id", "properties")
    got = spark_cart_features(events, _products(spark, sim_db, tmp_path), moments="last_event")
    assert got["device"].isna().all() and got["channel"].isna().all()
    assert expected["device"].notna().any()
    pd.testing.assert_frame_equal(
        got.drop(columns=["device", "channel"]), expected.drop(columns=["device", "channel"])
    )


@pytest.fixture(scope="module")
def cdnow(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CDNOW sample's 6,919 transactions as purchase events in a store (and exported)."""
    tx = read_transactions(
        shared_data / "cdnow_lifetimes" / "CDNOW_sample.txt",
        customer="column1",
        date_col="column2",
        value="column4",
    )
    n = len(tx)
    events = pd.DataFrame(
        {
            "event_id": [f"cd{i}" for i in range(n)],
            "ts": tx["ts"],
            "user_id": tx["customer"],
            "session_id": [f"s{i}" for i in range(n)],
            "event_type": "purchase",
            "product_id": "cd",
            "quantity": 1,
            "price": tx["value"],
            "order_id": [f"o{i}" for i in range(n)],
        }
    )
    folder = tmp_path_factory.mktemp("cdnow")
    with EventStore(folder / "cdnow.duckdb") as store:
        assert store.ingest_records(events).accepted == n
        store.export("events", folder / "events.parquet")
    return folder / "cdnow.duckdb"


def test_clv_summary_and_fit_equal_on_cdnow(spark: Any, cdnow: Path) -> None:
    end = "1997-09-30"
    with EventStore(cdnow, read_only=True) as store:
        expected = summary_from_store(store, observation_end=end, time_unit="weeks")
    got = spark_clv_summary(
        read_events(spark, cdnow.parent / "events.parquet"), observation_end=end, time_unit="weeks"
    )
    assert len(expected) == 2357 and (expected["frequency"] > 0).sum() > 500
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, atol=0)
    a = clv_from_summary(expected, time_unit="weeks")
    b = clv_from_summary(got, time_unit="weeks")
    # the summaries differ in the last bit of a few spend means (doubles summed in another order),
    # which moves the optimum within the optimiser's tolerance, and the likelihood not at all
    for model in ("bgnbd", "gamma_gamma"):
        for key, value in getattr(a, model).items():
            tol = 1e-9 if key in ("log_likelihood", "customers") else 1e-5
            assert getattr(b, model)[key] == pytest.approx(value, rel=tol), (model, key)
    # Fader, Hardie & Lee (2005) on CDNOW: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426
    assert round(b.bgnbd["r"], 3) == 0.243 and round(b.bgnbd["b"], 2) == 2.43


def test_cli_clv_engines_agree(spark: Any, cdnow: Path) -> None:
    docs = {}
    for engine, source in (
        ("duckdb", ["--db", str(cdnow)]),
        ("spark", ["--events", str(cdnow.parent / "events.parquet")]),
    ):
        result = runner.invoke(
            app, ["clv", *source, "--engine", engine, "--observation-end", "1997-09-30", "--json"]
        )
        assert result.exit_code == 0, result.output
        docs[engine] = json.loads(result.stdout)
    assert docs["spark"]["source"] == "events" and docs["duckdb"]["source"] == "store"
    assert docs["spark"]["customers"] == docs["duckdb"]["customers"] == 2357
    for key, value in docs["duckdb"]["bgnbd"].items():
        assert docs["spark"]["bgnbd"][key] == pytest.approx(value, rel=1e-5), key


def test_cli_segments_engine_spark_gives_the_same_rfm(spark: Any, sim_db: Path) -> None:
    docs = {}
    for engine in ("duckdb", "spark"):
        result = runner.invoke(app, ["segments", "--db", str(sim_db), "--engine", engine, "--json"])
        assert result.exit_code == 0, result.output
        docs[engine] = json.loads(result.stdout)
    rfm_spark, rfm_duck = docs["spark"]["rfm"], docs["duckdb"]["rfm"]
    assert rfm_spark["as_of"] == rfm_duck["as_of"] and rfm_spark["customers"] == rfm_duck["customers"] > 10
    # the same segments and sizes; mean recencies agree to rounding (days from microseconds)
    assert len(rfm_spark["segments"]) == len(rfm_duck["segments"]) > 2
    for got, expected in zip(rfm_spark["segments"], rfm_duck["segments"], strict=True):
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-9), key
            else:
                assert got[key] == value, key
    assert "RFM scores computed on Spark" in docs["spark"]["notes"]
    assert docs["spark"]["clusters"] == docs["duckdb"]["clusters"]


def test_cli_features_then_train(spark: Any, sim_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    made = runner.invoke(
        app,
        ["abandonment", "features", "--engine", "spark", "--db", str(sim_db), "--out", str(out), "--json"],
    )
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    with EventStore(sim_db, read_only=True) as store:
        expected = cart_features(store)
    assert doc["engine"] == "spark" and doc["rows"] == len(expected) > 50
    assert doc["positive_rate"] == pytest.approx(expected["abandoned"].mean())
    trained = runner.invoke(
        app, ["abandonment", "train", "--features", str(out), "--model-dir", str(tmp_path / "m"), "--json"]
    )
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["rows"] == len(expected)
