"""RFM scores against pandas, clusters that recover planted groups, price sensitivity against pandas."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from cartlift.analytics import (
    CustomerClusters,
    price_sensitivity,
    read_transactions,
    rfm,
    rfm_from_orders,
    segments,
)
from cartlift.errors import DataError, InvalidParameterError
from cartlift.store import EventStore

from .conftest import make_store
from .conftest import planted_customers as _planted

# the R x F grid as usually published (regex form, R score then F score)
PUBLISHED_GRID = {
    r"[1-2][1-2]": "Hibernating",
    r"[1-2][3-4]": "At risk",
    r"[1-2]5": "Can't lose them",
    r"3[1-2]": "About to sleep",
    r"33": "Need attention",
    r"[3-4][4-5]": "Loyal customers",
    r"41": "Promising",
    r"51": "New customers",
    r"[4-5][2-3]": "Potential loyalists",
    r"5[4-5]": "Champions",
}


def _score(values: pd.Series, ascending: bool = True) -> pd.Series:
    """Quintile score from the percent rank, ties sharing the lowest rank (pandas' rank(method='min'))."""
    ranks = values.rank(method="min", ascending=ascending)
    pr = (ranks - 1) / (len(values) - 1) if len(values) > 1 else ranks * 0
    return np.minimum(5, 1 + np.floor(5 * pr + 1e-12)).astype(int)


def _segment(r: int, f: int) -> str:
    for pattern, name in PUBLISHED_GRID.items():
        if re.fullmatch(pattern, f"{r}{f}"):
            return name
    raise AssertionError(f"no segment for {r}{f}")


def test_rfm_on_cdnow_transactions_equals_pandas(shared_data: Path) -> None:
    tx = read_transactions(
        shared_data / "cdnow_lifetimes" / "CDNOW_sample.txt",
        customer="column1",
        date_col="column2",
        value="column4",
    )
    as_of = datetime(1998, 7, 1)
    result = rfm_from_orders(tx, as_of=as_of)
    c = tx.groupby("customer").agg(last=("ts", "max"), frequency=("ts", "size"), monetary=("value", "sum"))
    c["recency_days"] = (as_of - c["last"]).dt.total_seconds() / 86400
    c["r"] = _score(c["recency_days"], ascending=False)
    c["f"] = _score(c["frequency"])
    c["m"] = _score(c["monetary"])
    got = result.customers.set_index("customer").loc[c.index]
    assert got["recency_days"].to_numpy() == pytest.approx(c["recency_days"].to_numpy())
    assert (got["frequency"].to_numpy() == c["frequency"].to_numpy()).all()
    assert (got[["r", "f", "m"]].to_numpy() == c[["r", "f", "m"]].to_numpy()).all()
    expected_segments = [_segment(r, f) for r, f in zip(c["r"], c["f"], strict=True)]
    assert got["segment"].tolist() == expected_segments
    seg = result.segments.set_index("segment")
    assert seg["customers"].sum() == len(c)
    assert seg["revenue"].sum() == pytest.approx(c["monetary"].sum())
    assert seg["meaning"].notna().all()


def test_rfm_from_the_store_counts_orders_not_lines() -> None:
    t = datetime(2025, 6, 1)
    rows = [
        # one order of two lines, then a second order a week later
        {
            "ts": t,
            "user_id": "a",
            "session_id": "a1",
            "event_type": "purchase",
            "order_id": "o1",
            "price": 10.0,
        },
        {
            "ts": t,
            "user_id": "a",
            "session_id": "a1",
            "event_type": "purchase",
            "order_id": "o1",
            "price": 5.0,
        },
        {
            "ts": t + timedelta(days=7),
            "user_id": "a",
            "session_id": "a2",
            "event_type": "purchase",
            "price": 20.0,
        },
        {
            "ts": t + timedelta(days=1),
            "user_id": "b",
            "session_id": "b1",
            "event_type": "purchase",
            "price": 50.0,
            "quantity": 2,
        },
        {"ts": t + timedelta(days=9), "user_id": "c", "session_id": "c1", "event_type": "view"},
    ]
    with make_store(rows) as store:
        result = rfm(store, as_of="2025-06-10")
    got = result.customers.set_index("customer")
    assert list(got.index) == ["a", "b"]  # viewers are not customers
    assert got.loc["a", ["frequency", "monetary"]].tolist() == [2, 35.0]
    assert got.loc["b", ["frequency", "monetary"]].tolist() == [1, 100.0]
    assert got.loc["a", "recency_days"] == pytest.approx(2.0)


def test_rfm_without_purchases_says_so() -> None:
    with make_store([{"ts": datetime(2025, 1, 1), "event_type": "view"}]) as store:
        with pytest.raises(DataError, match="RFM needs purchases"):
            rfm(store)
        result = segments(store)
    assert result.rfm is None and any("no RFM" in n for n in result.notes)


def test_clusters_recover_planted_groups_and_describe_them() -> None:
    features, kinds = _planted(1)
    model = CustomerClusters(random_state=0).fit(features)
    assert model.k_ == 3
    assert adjusted_rand_score(kinds, model.labels_) > 0.95
    assert max(model.silhouette_scores_, key=lambda k: model.silhouette_scores_[k]) == "3"
    # cluster 1 is the largest (the browsers), described in words against the other customers
    assert model.profiles_["customers"].tolist() == sorted(model.profiles_["customers"], reverse=True)
    browsers = model.descriptions_[0]
    assert browsers.startswith("62% of customers")
    assert "spend 1/604 of the others' average (2.0 vs 1,218 spent)" in browsers
    lapsed = model.descriptions_[2]
    assert "have been away 15.4x the others' average (120 vs 7.8 days since last visit)" in lapsed
    # same seed, same answer; predict maps the training rows to their labels
    again = CustomerClusters(random_state=0).fit(features)
    assert (again.labels_ == model.labels_).all()
    assert (model.predict(features) == model.labels_).all()


@pytest.mark.parametrize(
    ("kwargs", "frame", "error", "match"),
    [
        (
            {"k_min": 1},
            None,
            InvalidParameterError,
            "'k_min' parameter of CustomerClusters must be an int >= 2",
        ),
        ({"k_min": 5, "k_max": 3}, None, DataError, "k_max"),
        ({}, pd.DataFrame({"colour": [1, 2, 3]}), DataError, "No behavioural feature columns"),
        ({}, pd.DataFrame({"orders": [1.0, 2.0]}), DataError, "more customers than clusters"),
        ({}, pd.DataFrame({"orders": [1.0] * 10}), DataError, "nothing to cluster"),
    ],
)
def test_cluster_misuse(
    kwargs: dict[str, Any], frame: pd.DataFrame | None, error: type[Exception], match: str
) -> None:
    data = frame if frame is not None else _planted(0)[0]
    with pytest.raises(error, match=match):
        CustomerClusters(**kwargs).fit(data)


def test_price_sensitivity_equals_pandas() -> None:
    rng = np.random.default_rng(5)
    products = [{"product_id": f"p{i}", "category": f"c{i % 2}", "price": 1.0} for i in range(10)]
    prices = {f"p{i}": float(10 * (i + 1)) for i in range(10)}
    rows = []
    t = datetime(2025, 1, 1)
    for u in range(30):
        cheap = u % 3 == 0  # every third customer picks the cheapest of what they saw
        seen = rng.choice(10, size=6, replace=False)
        for p in seen:
            rows.append(
                {
                    "ts": t,
                    "user_id": f"u{u}",
                    "event_type": "view",
                    "product_id": f"p{p}",
                    "price": prices[f"p{p}"],
                }
            )
            rows.append(
                {
                    "ts": t,
                    "user_id": f"u{u}",
                    "event_type": "view",
                    "product_id": f"p{p}",
                    "price": prices[f"p{p}"],
                }
            )
        picks = sorted(seen)[:2] if cheap else rng.choice(seen, size=2, replace=False)
        for p in picks:
            rows.append(
                {
                    "ts": t,
                    "user_id": f"u{u}",
                    "event_type": "cart_add",
                    "product_id": f"p{p}",
                    "price": prices[f"p{p}"],
                }
            )
    with make_store(rows, products) as store:
        got = price_sensitivity(store, min_viewed=3, shrinkage=2.0)
    ev = pd.DataFrame(rows)
    ev["category"] = ev["product_id"].map({p["product_id"]: p["category"] for p in products})
    med = ev[ev.event_type == "view"].groupby("category")["price"].median()
    ev["rel"] = np.log(ev["price"] / ev["category"].map(med))
    ev["kind"] = np.where(ev.event_type == "view", "viewed", "chosen")
    pairs = ev.groupby(["user_id", "product_id", "kind"])["rel"].mean().reset_index()
    per = pairs.pivot_table(index="user_id", columns="kind", values="rel", aggfunc=["mean", "size"])
    n_c = per[("size", "chosen")]
    expected = n_c / (n_c + 2.0) * (per[("mean", "viewed")] - per[("mean", "chosen")])
    assert got.loc[expected.index, "sensitivity"].to_numpy() == pytest.approx(expected.to_numpy())
    cheap_users = [f"u{u}" for u in range(30) if u % 3 == 0]
    assert (got.loc[cheap_users, "label"] == "price sensitive").all()
    with pytest.raises(InvalidParameterError, match="min_viewed >= 1"):
        price_sensitivity(store, min_viewed=0)


def test_segments_on_rees46(rees_store: EventStore) -> None:
    result = segments(rees_store)
    doc = result.to_dict()
    assert result.rfm is not None and result.clusters is not None
    assert (
        sum(s["customers"] for s in doc["rfm"]["segments"])
        == rees_store.query("SELECT count(DISTINCT user_id) AS n FROM events WHERE event_type = 'purchase'")[
            "n"
        ].iloc[0]
    )
    assert len(doc["clusters"]["clusters"]) == doc["clusters"]["k"]
    assert sum(doc["price_sensitivity"].values()) == len(result.price)
