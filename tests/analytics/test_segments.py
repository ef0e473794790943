"""Segments by k-means, HDBSCAN and a SOM: planted groups recovered, stability, and the words and money per segment."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from cartlift.analytics import (
    STABLE,
    CustomerClusters,
    clv_from_summary,
    customer_features,
    segments,
    summary_from_store,
)
from cartlift.analytics._cluster_methods import bootstrap_stability, fit_method, silhouette
from cartlift.analytics._segment_words import cadence, describe_segments
from cartlift.errors import InvalidParameterError
from cartlift.simulate import simulate
from cartlift.store import EventStore

from .conftest import planted_customers as _planted


@pytest.mark.parametrize("method", ["kmeans", "hdbscan", "som"])
def test_each_method_recovers_planted_groups_stably(method: str) -> None:
    features, kinds = _planted(1)
    model = CustomerClusters(method=method, n_boot=6, random_state=0).fit(features)
    assert model.method_ == method and model.k_ == 3
    assert adjusted_rand_score(kinds, model.labels_) > 0.95
    mean, lo, hi = model.stability_
    assert lo <= mean <= hi and mean > 0.9
    # segments numbered by size; predict gives the training rows their labels; same seed, same answer
    assert model.profiles_["customers"].tolist() == [300, 120, 60]
    assert (model.predict(features) == model.labels_).all()
    again = CustomerClusters(method=method, n_boot=0, random_state=0).fit(features)
    assert (again.labels_ == model.labels_).all()


def test_fitted_on_a_sample_the_rest_go_to_the_nearest_segment() -> None:
    features, kinds = _planted(2)
    for method in ("kmeans", "hdbscan", "som"):
        model = CustomerClusters(method=method, fit_size=200, n_boot=0, random_state=0).fit(features)
        assert len(model.labels_) == len(features)
        assert adjusted_rand_score(kinds, model.labels_) > 0.9, method


def test_hdbscan_noise_is_the_last_segment_named_as_such() -> None:
    features, kinds = _planted(3, outliers=40)
    model = CustomerClusters(method="hdbscan", n_boot=0, random_state=0).fit(features)
    assert model.noise_ == model.k_ == 3
    noise = model.labels_ == model.noise_
    # most planted oddballs are noise, and almost no planted customer is
    assert noise[kinds == -1].mean() > 0.5 and noise[kinds >= 0].mean() < 0.05
    assert model.descriptions_[-1].startswith("no clear group, ")
    assert bool(model.profiles_["noise"].iloc[-1]) and not model.profiles_["noise"].iloc[:-1].any()
    # a noise customer scores 0 in the silhouette, so leaving customers out never raises it
    X = model.transform(features)
    all_rows = np.arange(len(X))
    raw = np.where(noise, -1, model.labels_)
    from sklearn.metrics import silhouette_samples

    kept = silhouette_samples(X[~noise], raw[~noise])
    assert silhouette(X, raw, all_rows) == pytest.approx(kept.sum() / len(X))


def test_auto_keeps_the_best_silhouette_among_stable_methods() -> None:
    features, _ = _planted(4)
    model = CustomerClusters(method="auto", n_boot=4, random_state=0).fit(features)
    rows = model.comparison_
    assert set(rows) == {"kmeans", "hdbscan", "som"}
    stable = {m: r["silhouette"] for m, r in rows.items() if r["stability"][0] >= STABLE}
    assert model.method_ == max(stable, key=lambda m: stable[m])
    assert model.silhouette_ == rows[model.method_]["silhouette"]


def test_stability_is_lower_on_structureless_customers() -> None:
    """Bootstrap ARI near 1 where there are groups, clearly lower on one blob cut into pieces."""
    rng = np.random.default_rng(0)
    blob = rng.normal(size=(400, 4))
    groups = np.concatenate([rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 8])
    params = {"k": 4, "n_init": 1}
    on_blob = bootstrap_stability(fit_method("kmeans", blob, params, 0), blob, rng, 8)
    on_groups = bootstrap_stability(fit_method("kmeans", groups, {"k": 2, "n_init": 1}, 0), groups, rng, 8)
    assert on_groups[0] > 0.99 and on_blob[0] < 0.9
    # every pair of refits is counted: the interval brackets the mean
    assert on_blob[1] <= on_blob[0] <= on_blob[2]


def test_descriptions_and_money_against_pandas() -> None:
    features = pd.DataFrame(
        {
            "orders": [4.0, 4.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            "spend": [300.0, 300.0, 300.0, 0.0, 0.0, 50.0, 50.0, 0.0],
            "sessions": [5.0, 6.0, 7.0, 2.0, 1.0, 2.0, 3.0, 1.0],
        },
        index=[f"c{i}" for i in range(8)],
    )
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    X = np.log1p(features.to_numpy())
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    clv = pd.Series({"c0": 100.0, "c1": 50.0, "c2": 30.0, "c6": 20.0})
    sensitive = pd.Series([0.0] * 3 + [1.0] * 5, index=features.index)
    profiles, words = describe_segments(
        features,
        X,
        labels,
        span_days=30.0,
        price_sensitive=sensitive.iloc[:8].where(sensitive.notna()),
        clv=clv,
    )
    first = profiles.iloc[0]
    assert first["customers"] == 3 and first["share"] == pytest.approx(3 / 8)
    assert first["revenue_share"] == pytest.approx(900 / 1000)
    assert first["mean_clv"] == pytest.approx(60.0) and first["clv_share"] == pytest.approx(180 / 200)
    assert profiles.iloc[1]["mean_clv"] == pytest.approx(20.0)  # only c6 of them has a CLV
    # 900 / 3 against 100 / 5 = 15x; 10 / 3 orders over 30 days is every 9 days
    assert "spend 15.0x the others' average (300 vs 20.0 spent)" in words[0]
    assert "buy weekly or more (about every 9 days)" in words[0]
    assert words[0].startswith("38% of customers: ")
    # fewer than 5 customers with a known sensitivity on one side: no price words
    assert "price" not in words[0]


def test_price_words_need_a_clear_gap() -> None:
    n = 40
    features = pd.DataFrame({"spend": np.r_[np.full(20, 100.0), np.full(20, 10.0)]}, index=range(n))
    labels = np.r_[np.zeros(20, int), np.ones(20, int)]
    X = np.log1p(features.to_numpy())
    sensitive = pd.Series(np.r_[np.zeros(16), np.ones(4), np.ones(12), np.zeros(8)], index=range(n))
    _, words = describe_segments(features, (X - X.mean()) / X.std(), labels, price_sensitive=sensitive)
    assert "price-insensitive (20% pick cheaper than they browse vs 60% of the others)" in words[0]
    assert "price-sensitive (60% pick cheaper than they browse vs 20% of the others)" in words[1]


@pytest.mark.parametrize(
    ("orders", "words"),
    [
        (0.0, "have not bought"),
        (6.0, "weekly"),
        (1.0, "monthly"),
        (0.5, "quarterly"),
        (0.1, "rarely"),
        (0.05, "hardly ever"),
    ],
)
def test_cadence_words(orders: float, words: str) -> None:
    assert words in cadence(orders, 30.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"method": "dbscan"},
            "'method' parameter of CustomerClusters must be one of 'kmeans', 'hdbscan', 'som', 'auto'",
        ),
        ({"n_boot": -1}, "'n_boot' parameter of CustomerClusters must be an int >= 0"),
    ],
)
def test_segment_misuse(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        CustomerClusters(**kwargs).fit(_planted(0)[0])


def test_segments_of_a_store_carry_clv_and_revenue(tmp_path: Any) -> None:
    """On a simulated store with enough history for CLV: per-segment CLV equals the CLV table's mean."""
    sim = simulate(n_users=1500, n_days=120, random_state=3)
    with EventStore(tmp_path / "s.duckdb") as store:
        sim.write_to(store)
        result = segments(store, method="kmeans", n_boot=0)
        features = customer_features(store)
        clv = clv_from_summary(summary_from_store(store, time_unit="weeks"), time_unit="weeks").customers[
            "clv"
        ]
    assert result.clusters is not None and not any("CLV" in n for n in result.notes)
    labels = pd.Series(result.clusters.labels_, index=features.index)
    for row in result.profiles.itertuples():
        mine = labels.index[labels == row.cluster - 1]
        assert row.revenue == pytest.approx(features.loc[mine, "spend"].sum())
        known = clv.reindex(mine).dropna()
        if len(known):
            assert row.mean_clv == pytest.approx(known.mean())
    assert result.profiles["revenue_share"].sum() == pytest.approx(1.0)
    doc = result.to_dict()["clusters"]
    assert doc["method"] == "kmeans" and doc["clusters"][0]["description"] == result.descriptions[0]
