"""Invariants that hold for any configuration and seed (hypothesis on tiny stores)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartlift.simulate import ACTIONS, simulate


@st.composite
def configs(draw: st.DrawFn) -> dict[str, object]:
    abandonment = draw(st.floats(0.5, 0.9))
    return {
        "n_users": draw(st.integers(1, 40)),
        "n_days": draw(st.integers(1, 6)),
        "n_products": draw(st.integers(12, 80)),
        "brands_per_category": draw(st.integers(1, 4)),
        "views_per_session": draw(st.floats(1.0, 8.0)),
        "complement_rate": draw(st.floats(0.0, 1.0)),
        "cart_abandonment_rate": abandonment,
        "conversion_rate": draw(st.floats(0.005, min(0.09, 0.99 - abandonment))),
        "taste_top_k": draw(st.integers(1, 100)),
        "outcome_window_days": draw(st.floats(0.25, 10.0)),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(knobs=configs(), seed=st.integers(0, 2**32 - 1))
def test_any_simulation_is_consistent(knobs: dict[str, object], seed: int) -> None:
    sim = simulate(random_state=seed, **knobs)  # type: ignore[arg-type]
    ev = sim.events.to_pandas()
    for col in ("user_id", "session_id", "event_type", "product_id", "order_id", "channel", "device"):
        ev[col] = ev[col].astype(object)
    ev["pos"] = ev["event_id"].str[1:].astype(int)
    assert ev["event_id"].is_unique
    assert (ev["pos"].to_numpy() == np.arange(len(ev))).all()
    counts = ev["event_type"].value_counts().to_dict()
    assert {k: v for k, v in sim.stats.events_by_type.items() if v} == counts
    assert ev["user_id"].nunique() == sim.config.n_users
    # within a session: time strictly increases; adds follow views, purchases follow adds and checkout
    for _, s in ev.groupby("session_id", sort=False):
        assert (s["ts"].diff().iloc[1:] > pd.Timedelta(0)).all()
        types = s["event_type"].tolist()
        seen: dict[str, set[str]] = {"view": set(), "cart_add": set()}
        checked_out = False
        for kind, product in zip(types, s["product_id"], strict=True):
            if kind == "cart_add":
                assert product in seen["view"]
            if kind in ("cart_remove", "purchase"):
                assert product in seen["cart_add"]
            if kind == "purchase":
                assert checked_out
            if kind == "checkout":
                assert seen["cart_add"]
                checked_out = True
            if kind in seen:
                seen[kind].add(product)
    # the truth covers exactly the sessions and carts of the events
    sessions = sim.truth["truth_sessions"].to_pandas()
    assert set(sessions["session_id"]) == set(ev["session_id"])
    carted = set(ev.loc[ev["event_type"] == "cart_add", "session_id"])
    bought = set(ev.loc[ev["event_type"] == "purchase", "session_id"])
    returns = set(sessions.loc[sessions["kind"] == "return_visit", "session_id"])
    carts = sim.truth["truth_carts"].to_pandas()
    assert set(carts["cart_id"]) == carted - bought
    assert set(carts.loc[carts["recovered"], "return_session_id"]) == returns
    p = carts[[f"p_{a}" for a in ACTIONS]].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    q = sessions["p_purchase"].dropna()
    assert ((q >= 0) & (q <= 1)).all()
    assert sessions["p_purchase"].notna().sum() == len(carted)
    # each customer's taste ranking: k distinct products, ranks 1..k, scores not increasing
    taste = sim.taste_ranking().to_pandas()
    k = min(sim.config.taste_top_k, sim.config.n_products)
    assert len(taste) == sim.config.n_users * k
    for _, t in taste.groupby("user_id"):
        assert t["rank"].tolist() == list(range(1, k + 1))
        assert t["product_id"].is_unique
        assert (np.diff(t["score"].to_numpy()) <= 0).all()
    assert pd.Series(sim.products.column("product_id").to_pylist()).is_unique
