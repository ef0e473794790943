"""The batch jobs on local Spark give the DuckDB path's answers (REES46 sample and a simulated store).

Every test here starts (or shares) the one session of ``conftest.spark``: slow, run by ``make test-slow``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cartlift.analytics import Funnel, rfm
from cartlift.cli import app
from cartlift.recommend import (
    ALS,
    Interactions,
    association_rules,
    basket_matrix,
    evaluate,
    frequent_itemsets,
    temporal_split,
)
from cartlift.recommend._interactions import events_frame
from cartlift.spark import (
    SparkALS,
    baskets_from_events,
    funnel_on_parquet,
    read_events,
    spark_frequent_itemsets,
    spark_funnel,
    spark_rfm,
    write_events_partitioned,
)
from cartlift.store import EventStore

pytestmark = [pytest.mark.spark, pytest.mark.slow]
runner = CliRunner()

SPECS = [
    Funnel(),
    Funnel(unit="user"),
    Funnel(unit="user", window="2h"),
    Funnel(steps=["view", "purchase"], window="10m"),
    Funnel(steps=["view|cart_add", "cart_add", "purchase"], unit="user", window="none"),
    Funnel(start="2019-10-01T00:30", end="2019-10-01T01:30"),
]


def _same_steps(a: Any, b: Any) -> None:
    assert [(s.name, s.count) for s in b.steps] == [(s.name, s.count) for s in a.steps]
    for x, y in zip(a.steps, b.steps, strict=True):
        assert y.conversion_from_first == x.conversion_from_first
        assert y.ci_low == x.ci_low and y.ci_high == x.ci_high
        for name in ("median_seconds_from_previous", "p90_seconds_from_previous"):
            assert getattr(y, name) == pytest.approx(getattr(x, name), abs=1e-3)
    assert b.time_to_convert.converted == a.time_to_convert.converted
    assert b.time_to_convert.median_seconds == pytest.approx(a.time_to_convert.median_seconds, abs=1e-3)


@pytest.mark.parametrize("spec", SPECS, ids=range(len(SPECS)))
def test_funnel_counts_equal_on_rees46(spark: Any, rees_parquet: Path, spec: Funnel) -> None:
    expected = funnel_on_parquet(rees_parquet, spec, engine="duckdb")
    assert expected.steps[0].count > 0
    _same_steps(expected, spark_funnel(read_events(spark, rees_parquet), spec))


@pytest.mark.parametrize("spec", SPECS[:5], ids=range(5))
def test_funnel_counts_equal_on_a_simulated_store(spark: Any, sim_parquet: Path, spec: Funnel) -> None:
    expected = funnel_on_parquet(sim_parquet, spec, engine="duckdb")
    _same_steps(expected, spark_funnel(read_events(spark, sim_parquet), spec))


def test_cli_funnel_engines_print_the_same_counts(spark: Any, rees_parquet: Path) -> None:
    docs = {}
    for engine in ("duckdb", "spark"):
        args = [
            "funnel",
            "--events",
            str(rees_parquet),
            "--engine",
            engine,
            "--spark-master",
            "local[2]",
            "--json",
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        docs[engine] = json.loads(result.stdout)
    # the counts of the REES46 sample pinned by tests/analytics/test_cli_analytics.py
    assert [s["count"] for s in docs["duckdb"]["steps"]] == [5066, 118, 65]
    assert docs["spark"]["steps"] == docs["duckdb"]["steps"]


def test_unsupported_funnel_options_point_to_duckdb(spark: Any, sim_parquet: Path) -> None:
    from cartlift.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="--engine duckdb"):
        spark_funnel(read_events(spark, sim_parquet), Funnel(breakdown="properties.it's"))


def test_partitioned_ingest_round_trip(spark: Any, sim_parquet: Path, tmp_path: Path) -> None:
    events = read_events(spark, sim_parquet)
    out = tmp_path / "events_by_date"
    written = write_events_partitioned(events.unionByName(events), out)  # twice: de-duplicated
    assert written == events.count()
    assert sorted(p.name for p in out.glob("event_date=*"))[0].startswith("event_date=20")
    expected = funnel_on_parquet(sim_parquet, Funnel(), engine="duckdb")
    _same_steps(expected, funnel_on_parquet(out, Funnel(), engine="duckdb"))
    _same_steps(expected, spark_funnel(read_events(spark, out), Funnel()))


@pytest.mark.parametrize("which", ["rees", "sim"])
def test_rfm_scores_equal(spark: Any, which: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue("rees_parquet" if which == "rees" else "sim_parquet")
    with EventStore(
        path.parent / ("rees.duckdb" if which == "rees" else "sim.duckdb"), read_only=True
    ) as store:
        expected = rfm(store)
    got = spark_rfm(read_events(spark, path))
    assert got.as_of == expected.as_of
    a = expected.customers.sort_values("customer").reset_index(drop=True)
    b = got.customers.sort_values("customer").reset_index(drop=True)
    assert len(a) > 10
    for col in ("customer", "frequency", "r", "f", "m", "rfm", "segment"):
        assert b[col].astype(str).tolist() == a[col].astype(str).tolist(), col
    np.testing.assert_allclose(b["monetary"].astype(float), a["monetary"].astype(float), rtol=1e-9)
    np.testing.assert_allclose(b["recency_days"].astype(float), a["recency_days"].astype(float), atol=1e-6)
    assert (pd.to_datetime(b["last_order"]) == pd.to_datetime(a["last_order"])).all()
    assert got.segments["customers"].tolist() == expected.segments["customers"].tolist()


def _random_baskets(n: int = 3000, seed: int = 3) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    pop = rng.dirichlet(np.full(40, 0.3))
    baskets = []
    for _ in range(n):
        items = set(rng.choice(40, size=rng.integers(1, 6), p=pop).tolist())
        if 0 in items and rng.random() < 0.7:  # a bundle, so that triples are frequent
            items |= {1, 2}
        baskets.append([f"p{i}" for i in sorted(items)])
    return baskets


def test_fpgrowth_itemsets_and_rules_equal_cartlift(spark: Any) -> None:
    from pyspark.ml.fpm import FPGrowth

    baskets = _random_baskets()
    df = spark.createDataFrame([(b,) for b in baskets], "items array<string>")
    m, ids = basket_matrix(baskets)
    for min_support in (0.02, 0.005):
        expected = frequent_itemsets(m, min_support, item_ids=ids)
        got = spark_frequent_itemsets(df, min_support)
        assert got.n_baskets == expected.n_baskets and list(got.item_ids) == list(ids)
        assert dict(zip(got.itemsets, got.counts.tolist(), strict=True)) == dict(
            zip(expected.itemsets, expected.counts.tolist(), strict=True)
        )
        assert max(len(s) for s in got.itemsets) >= 3
        rules = association_rules(got, 0.3, max_consequent=1)
        assert len(rules) == len(association_rules(expected, 0.3, max_consequent=1)) > 0
        mllib = FPGrowth(itemsCol="items", minSupport=min_support, minConfidence=0.3).fit(df)
        assert mllib.associationRules.count() == len(rules)
    capped = spark_frequent_itemsets(df, 0.005, max_len=2)
    assert len(capped) == len(frequent_itemsets(m, 0.005, max_len=2, item_ids=ids))


def test_fpgrowth_on_store_baskets(spark: Any, rees_parquet: Path) -> None:
    baskets = baskets_from_events(read_events(spark, rees_parquet))
    rows = [r["items"] for r in baskets.collect()]
    m, ids = basket_matrix(rows)
    expected = frequent_itemsets(m, 0.01, item_ids=ids)
    got = spark_frequent_itemsets(baskets, 0.01)
    assert got.n_baskets == expected.n_baskets > 0
    assert got.itemsets == expected.itemsets and got.counts.tolist() == expected.counts.tolist()


def test_als_on_spark_is_within_noise_of_implicit_and_loads_as_als(
    spark: Any, sim_db: Path, tmp_path: Path
) -> None:
    with EventStore(sim_db, read_only=True) as store:
        frame = events_frame(store)
    task = temporal_split(frame, test_fraction=0.2)
    params = {"factors": 16, "regularization": 0.05, "alpha": 10.0, "iterations": 10, "random_state": 0}
    board = evaluate(
        {"implicit": ALS(**params), "spark": SparkALS(**params, spark_master="local[2]")},
        task,
        metrics=["Recall@10", "NDCG@10"],
        n_bootstrap=200,
    )
    rows = {r["model"]: r for r in board.rows}
    imp, spk = rows["implicit"], rows["spark"]
    print({m: (r["Recall@10"], r["Recall@10_ci"], r["NDCG@10"]) for m, r in rows.items()})
    # within noise: the two 95 % bootstrap intervals overlap, and the paired test finds no difference
    for metric in ("Recall@10", "NDCG@10"):
        (lo_i, hi_i), (lo_s, hi_s) = imp[f"{metric}_ci"], spk[f"{metric}_ci"]
        assert lo_s <= hi_i and lo_i <= hi_s, metric
    assert spk["Recall@10"] > 0

    model = SparkALS(**params, spark_master="local[2]").fit(Interactions.from_frame(frame))
    path = model.save(tmp_path / "als")
    loaded = ALS.load(path)
    assert type(loaded) is ALS
    users = model.user_ids_[:5]
    a, b = model.recommend(users, k=5), loaded.recommend(users, k=5)
    np.testing.assert_array_equal(np.asarray(a.ids), np.asarray(b.ids))
