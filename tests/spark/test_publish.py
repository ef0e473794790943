"""Models trained on Spark go into the service's registry and load like embedded ones.

The Spark tests share the session of ``conftest.spark`` (``make test-slow``); the others check the
feature-table path of ``cartlift abandonment`` and the engine options without starting Spark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartlift.cli import app
from cartlift.errors import DataError
from cartlift.predict import (
    FEATURE_NAMES,
    cart_features,
    load_model,
    read_cart_features,
    train_features,
    train_store,
)
from cartlift.recommend import ALS, Interactions, make_model
from cartlift.serve import LoadedModels, ModelRegistry, spark_train_all
from cartlift.spark import (
    SparkALS,
    _engine,
    read_events,
    read_products,
    spark_interactions,
)
from cartlift.store import EventStore

runner = CliRunner()
ALS_PARAMS = {"factors": 8, "iterations": 5, "regularization": 0.05, "alpha": 10.0}


@pytest.fixture(scope="module")
def sim_products(sim_db: Path) -> Path:
    """The simulated store's catalog, exported beside its events."""
    target = sim_db.parent / "products.parquet"
    if not target.exists():
        with EventStore(sim_db, read_only=True) as store:
            store.export("products", target)
    return target


@pytest.mark.spark
@pytest.mark.slow
def test_spark_published_models_load_and_serve_like_embedded(
    spark: Any, sim_db: Path, sim_parquet: Path, sim_products: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "models")
    result = spark_train_all(
        sim_parquet,
        registry,
        products=sim_products,
        master="local[2]",
        recommender_params=ALS_PARAMS,
        features_out=tmp_path / "features",
    )
    assert {k: v.get("engine") for k, v in result.items()} == dict.fromkeys(
        ("recommender", "popularity", "abandonment"), "spark"
    ), result
    loaded = LoadedModels.load(registry)
    assert loaded.errors == {}
    assert type(loaded.recommender) is ALS  # loads without pyspark, like an embedded ALS
    assert loaded.versions["recommender"]["name"] == "als"

    # the interactions Spark reads are the ones the store gives
    with EventStore(sim_db, read_only=True) as store:
        embedded = Interactions.from_store(store)
        train_store(store, tmp_path / "embedded-abandonment")
        rows = cart_features(store, moments="cart_events")
    data = spark_interactions(read_events(spark, sim_parquet), read_products(spark, sim_products))
    np.testing.assert_array_equal(data.user_ids, embedded.user_ids)
    np.testing.assert_array_equal(data.item_ids, embedded.item_ids)
    assert (data.matrix != embedded.matrix).nnz == 0

    # the served recommender answers as the SparkALS object fitted on the same data
    model = SparkALS(**ALS_PARAMS, random_state=0, spark_master="local[2]").fit(data)
    users = data.user_ids[:25]
    served, direct = loaded.recommender.recommend(users, k=10), model.recommend(users, k=10)
    np.testing.assert_array_equal(np.asarray(served.ids), np.asarray(direct.ids))
    np.testing.assert_allclose(np.asarray(served.scores), np.asarray(direct.scores), rtol=1e-6)

    popular = make_model("popularity", random_state=0).fit(embedded)
    np.testing.assert_array_equal(
        np.asarray(loaded.popularity.recommend(users, k=10).ids),
        np.asarray(popular.recommend(users, k=10).ids),
    )

    # the abandonment model learnt from Spark's features is the one the store trains
    embedded_model, _ = load_model(tmp_path / "embedded-abandonment")
    X = rows[list(FEATURE_NAMES)]
    np.testing.assert_array_equal(
        loaded.abandonment.predict_proba(X)[:, 1], embedded_model.predict_proba(X)[:, 1]
    )
    assert len(read_cart_features(tmp_path / "features")) == loaded.versions["abandonment"]["quality"]["rows"]


@pytest.mark.spark
@pytest.mark.slow
def test_cli_train_all_engine_spark_from_the_store(spark: Any, sim_db: Path, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    result = runner.invoke(
        app,
        [
            "train",
            "--all",
            "--engine",
            "spark",
            "--db",
            str(sim_db),
            "--registry",
            str(registry),
            "--recommender",
            "popularity",  # ALS on Spark is covered above; this checks the command's wiring
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["engine"] == "spark" and doc["registry"] == str(registry)
    assert all("version" in info for info in doc["models"].values()), doc["models"]
    loaded = LoadedModels.load(ModelRegistry(registry))
    assert loaded.errors == {} and loaded.abandonment is not None and loaded.recommender is not None


# -- without Spark ----------------------------------------------------------------------------


def test_features_written_by_duckdb_train_the_store_model(sim_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.parquet"
    made = runner.invoke(app, ["abandonment", "features", "--db", str(sim_db), "--out", str(out), "--json"])
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    with EventStore(sim_db, read_only=True) as store:
        expected = cart_features(store)
        train_store(store, tmp_path / "from-store")
    assert doc["engine"] == "duckdb" and doc["rows"] == len(expected)
    table = read_cart_features(out)
    pd.testing.assert_frame_equal(table, expected)
    trained = runner.invoke(
        app,
        ["abandonment", "train", "--features", str(out), "--model-dir", str(tmp_path / "m"), "--json"],
    )
    assert trained.exit_code == 0, trained.output
    a, meta = load_model(tmp_path / "m")
    b, _ = load_model(tmp_path / "from-store")
    assert meta["features"] == "cart"  # scored live like a store-trained model
    X = expected[list(FEATURE_NAMES)]
    np.testing.assert_array_equal(a.predict_proba(X)[:, 1], b.predict_proba(X)[:, 1])


def test_shuffled_feature_parts_are_put_back_in_order(sim_db: Path, tmp_path: Path) -> None:
    with EventStore(sim_db, read_only=True) as store:
        expected = cart_features(store, moments="cart_events")
    folder = tmp_path / "parts"
    folder.mkdir()
    shuffled = expected.sample(frac=1.0, random_state=1)
    for i, part in enumerate(np.array_split(np.arange(len(shuffled)), 3)):
        shuffled.iloc[part].to_parquet(folder / f"part-{i}.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    pd.testing.assert_frame_equal(read_cart_features(folder), expected)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p, "No such file or folder"),
        (lambda p: (p.mkdir(), p)[1], "No Parquet files under"),
        (
            lambda p: (pd.DataFrame({"x": [1]}).to_parquet(p), p)[1],
            "Not a cart feature table: it lacks session_id",
        ),
    ],
)
def test_bad_feature_tables_are_refused(make: Any, match: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=match):
        read_cart_features(make(tmp_path / "features.parquet"))


def test_a_table_with_one_outcome_cannot_train(sim_db: Path, tmp_path: Path) -> None:
    with EventStore(sim_db, read_only=True) as store:
        frame = cart_features(store)
    with pytest.raises(DataError, match="same outcome"):
        train_features(frame[frame["abandoned"] == 1], tmp_path / "m")


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--all", "--engine", "spark"],
        ["abandonment", "features", "--engine", "spark", "--out", "x.parquet"],
        ["clv", "--engine", "spark"],
        ["segments", "--engine", "spark"],
    ],
)
def test_engine_spark_without_pyspark_says_how_to_install(
    args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_engine, "HAS_SPARK", False)
    result = runner.invoke(app, [*args, "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code != 0
    assert "pip install 'cartlift[spark]'" in " ".join(result.output.split())


def test_events_without_engine_spark_are_refused(sim_parquet: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", "--all", "--events", str(sim_parquet), "--registry", str(tmp_path / "r")]
    )
    assert result.exit_code != 0
    assert "--events is read by --engine spark" in " ".join(result.output.split())
