"""Cart abandonment against a step-by-step Python walk through each unit's events, and scipy's statistics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, contingency, mannwhitneyu
from statsmodels.stats.multitest import multipletests

from cartlift.analytics import CartAbandonment, abandoned_carts, store_summary
from cartlift.errors import InvalidParameterError
from cartlift.predict import cart_features
from cartlift.store import EventStore

from ._reference import RANK
from .conftest import make_store


def random_rows(seed: int, n_users: int = 60) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sessions of views, adds, removes and purchases; equal timestamps and multi-day users on purpose."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    start = datetime(2025, 5, 1)
    for u in range(n_users):
        t = start + timedelta(minutes=int(rng.integers(0, 5000)))
        device = str(rng.choice(["mobile", "desktop"]))
        for s in range(int(rng.integers(1, 4))):
            t += timedelta(hours=int(rng.choice([1, 5, 30, 80])))
            for _ in range(int(rng.integers(1, 9))):
                t += timedelta(minutes=int(rng.choice([0, 1, 7, 45])))
                kind = str(rng.choice(["view", "cart_add", "cart_add", "purchase", "cart_remove"]))
                rows.append(
                    {
                        "ts": t,
                        "user_id": f"u{u}",
                        "session_id": f"u{u}s{s}",
                        "event_type": kind,
                        "product_id": f"p{int(rng.integers(12))}",
                        "price": float(rng.choice([5.0, 20.0, 80.0, 300.0])),
                        "quantity": int(rng.integers(1, 3)),
                        "device": device,
                    }
                )
    products = [{"product_id": f"p{i}", "category": f"c{i % 3}", "price": 10.0 * (i + 1)} for i in range(12)]
    return [{**r, "event_id": f"e{i:04d}"} for i, r in enumerate(rows)], products


def walk_carts(
    rows: list[dict[str, Any]], unit: str, window: timedelta | None
) -> list[tuple[str, datetime, bool, float, int]]:
    """Follow each unit's adds and purchases in time order, opening and closing carts by the definition."""
    key = "session_id" if unit == "session" else "user_id"
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["event_type"] in ("cart_add", "purchase"):
            by_unit.setdefault(r[key], []).append(r)
    carts = []
    for name, evs in by_unit.items():
        evs.sort(key=lambda r: (r["ts"], RANK[r["event_type"]]))
        cart: dict[str, Any] | None = None
        for r in evs:
            if r["event_type"] == "cart_add":
                if cart is not None and window is not None and r["ts"] - cart["last"] > window:
                    carts.append(
                        (name, cart["first"], True, cart["value"], cart["items"])
                    )  # the pause closed it
                    cart = None
                if cart is None:
                    cart = {"first": r["ts"], "last": r["ts"], "value": 0.0, "items": 0}
                cart["last"] = r["ts"]
                cart["value"] += r["price"] * r["quantity"]
                cart["items"] += r["quantity"]
            elif cart is not None:
                converted = window is None or r["ts"] - cart["last"] <= window
                carts.append((name, cart["first"], not converted, cart["value"], cart["items"]))
                cart = None
        if cart is not None:
            carts.append((name, cart["first"], True, cart["value"], cart["items"]))
    if unit == "session" and window is None:
        # a session's cart is the one it ended with
        last = {c[0]: c for c in carts}
        carts = list(last.values())
    return sorted(carts)


@pytest.fixture(scope="module")
def random_store() -> Iterator[tuple[EventStore, list[dict[str, Any]]]]:
    rows, products = random_rows(11)
    with make_store(rows, products) as store:
        yield store, rows


@pytest.mark.parametrize(
    ("unit", "window"),
    [
        ("session", None),
        ("session", timedelta(minutes=10)),
        ("user", timedelta(days=1)),
        ("user", timedelta(hours=2)),
    ],
)
def test_carts_equal_a_step_by_step_walk(
    random_store: tuple[EventStore, list[dict[str, Any]]], unit: str, window: timedelta | None
) -> None:
    store, rows = random_store
    got = CartAbandonment(unit=unit, window=window).carts(store)
    mine = sorted(
        (r.unit, r.first_add.to_pydatetime(), bool(r.abandoned), float(r.cart_value), int(r.items))
        for r in got.itertuples()
    )
    expected = walk_carts(rows, unit, window)
    assert len(mine) == len(expected)
    for a, b in zip(mine, expected, strict=True):
        assert a[:3] == b[:3]
        assert a[3] == pytest.approx(b[3])
        assert a[4] == b[4]


def test_rates_values_and_effect_sizes_equal_scipy(
    random_store: tuple[EventStore, list[dict[str, Any]]],
) -> None:
    store, _ = random_store
    spec = CartAbandonment(unit="user")
    carts = spec.carts(store)
    result = spec.compute(store)
    ab = carts["abandoned"].to_numpy(dtype=bool)
    assert (result.carts, result.abandoned) == (len(carts), int(ab.sum()))
    assert result.abandoned_value == pytest.approx(carts.loc[ab, "cart_value"].sum())
    effects = {f.feature: f for f in result.features}
    for name in ("cart_value", "items", "price_vs_category"):
        x, y = carts.loc[ab, name].dropna().to_numpy(float), carts.loc[~ab, name].dropna().to_numpy(float)
        test = mannwhitneyu(x, y, alternative="two-sided")
        assert effects[name].effect_size == pytest.approx(2 * test.statistic / (x.size * y.size) - 1)
        assert effects[name].p_value == pytest.approx(test.pvalue)
    table = pd.crosstab(carts["device"], carts["abandoned"]).to_numpy()
    assert effects["device"].effect_size == pytest.approx(contingency.association(table, method="cramer"))
    assert effects["device"].p_value == pytest.approx(chi2_contingency(table, correction=False)[1])
    rates = {lv.value: lv.rate for lv in effects["device"].levels}
    assert rates == pytest.approx(carts.groupby("device")["abandoned"].mean().to_dict())
    ps = [f.p_value for f in result.features if f.p_value is not None]
    adjusted = [f.p_value_adjusted for f in result.features if f.p_value is not None]
    assert adjusted == pytest.approx(list(multipletests(ps, method="holm")[1]))


def test_price_vs_category_median_and_new_vs_returning() -> None:
    t = datetime(2025, 5, 1, 10)
    rows = [
        {
            "ts": t - timedelta(days=2),
            "user_id": "old",
            "session_id": "o1",
            "event_type": "view",
            "product_id": "a",
        },
        {
            "ts": t,
            "user_id": "old",
            "session_id": "o2",
            "event_type": "cart_add",
            "product_id": "a",
            "price": 30.0,
        },
        {
            "ts": t,
            "user_id": "new",
            "session_id": "n1",
            "event_type": "cart_add",
            "product_id": "b",
            "price": 10.0,
        },
        {
            "ts": t + timedelta(minutes=1),
            "user_id": "new",
            "session_id": "n1",
            "event_type": "purchase",
            "product_id": "b",
        },
    ]
    products = [
        {"product_id": "a", "category": "shoes", "price": 20.0},
        {"product_id": "b", "category": "shoes", "price": 40.0},
        {"product_id": "c", "category": "shoes", "price": 100.0},
    ]
    with make_store(rows, products) as store:
        carts = CartAbandonment().carts(store).set_index("unit")
    assert carts.loc["o2", "price_vs_category"] == pytest.approx(30 / 40)  # median shoe price is 40
    assert carts.loc["n1", "price_vs_category"] == pytest.approx(10 / 40)
    assert carts.loc["o2", "new_vs_returning"] == "returning"
    assert carts.loc["n1", "new_vs_returning"] == "new"
    assert carts.loc["o2", "abandoned"] and not carts.loc["n1", "abandoned"]
    assert carts.loc["o2", "daypart"] == "06-12 morning"


def test_rees46_summary_abandoned_carts_and_the_model_label_agree(rees_store: EventStore) -> None:
    # one definition of an abandoned cart: the summary, abandoned-carts and the model's label count
    # the same carts, and the summary and abandoned-carts the same value
    result = abandoned_carts(rees_store)
    summary = store_summary(rees_store)
    label = cart_features(rees_store)  # one row per cart with items at its last cart event
    assert (result.carts, result.abandoned) == (summary["sessions_with_cart"], summary["abandoned_carts"])
    assert result.abandonment_rate == pytest.approx(summary["cart_abandonment_rate"])
    assert result.abandoned_value == pytest.approx(summary["abandoned_cart_value"], abs=0.005)
    assert (len(label), int(label["abandoned"].sum())) == (result.carts, result.abandoned)
    # and an independent pandas count: sessions whose last add has no purchase at or after it
    sessions = rees_store.query(
        """SELECT session_id, max(ts) FILTER (WHERE event_type = 'cart_add') AS last_add,
                  max(ts) FILTER (WHERE event_type = 'purchase') AS last_buy
           FROM events GROUP BY 1 HAVING bool_or(event_type = 'cart_add')"""
    )
    expected = int((sessions.last_buy.isna() | (sessions.last_buy < sessions.last_add)).sum())
    assert (len(sessions), expected) == (118, 56) == (result.carts, result.abandoned)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"unit": "cart"}, "'unit' parameter of CartAbandonment"),
        ({"window": "whenever"}, "abandonment window must be a duration"),
        ({"category_limit": 0}, "'category_limit' parameter of CartAbandonment"),
        ({"start": "soon"}, "must be an ISO date"),
    ],
)
def test_invalid_options(rees_store: EventStore, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        CartAbandonment(**kwargs).compute(rees_store)


def test_no_carts_is_a_valid_empty_result() -> None:
    rows = [{"ts": datetime(2025, 1, 1), "event_type": "view"}]
    with make_store(rows) as store:
        result = abandoned_carts(store)
    assert (result.carts, result.abandoned, result.abandonment_rate, result.ci_low) == (0, 0, None, None)
    assert all(f.p_value is None for f in result.features)
