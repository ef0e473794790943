"""The simulator knows the truth behind its events: funnels, abandonment and price sensitivity must recover it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scipy.stats import spearmanr

from cartlift.analytics import CartAbandonment, funnel, price_sensitivity, wilson_interval
from cartlift.store import EventStore

simulate = pytest.importorskip("cartlift.simulate").simulate


@pytest.fixture(scope="module")
def sim_store() -> Iterator[EventStore]:
    sim = simulate(n_users=3000, n_days=14, random_state=1)
    with EventStore(":memory:") as store:
        sim.write_to(store)
        yield store


def test_funnel_recovers_the_simulated_sessions(sim_store: EventStore) -> None:
    truth = sim_store.con.sql("SELECT * FROM truth_sessions").to_arrow_table().to_pandas()
    result = funnel(sim_store)
    counts = {s.name: s.count for s in result.steps}
    assert [s.name for s in result.steps] == ["view", "cart_add", "checkout", "purchase"]
    # every simulated session starts with a view; those with a cart and a purchase are known
    assert counts["view"] == len(truth)
    assert counts["cart_add"] == int(truth["has_cart"].sum())
    assert counts["purchase"] == int(truth["purchased"].sum())


def test_cart_to_purchase_rate_covers_the_true_probability(sim_store: EventStore) -> None:
    truth = sim_store.con.sql("SELECT * FROM truth_sessions WHERE has_cart").to_arrow_table().to_pandas()
    result = funnel(sim_store, ["cart_add", "purchase"])
    step = result.steps[1]
    # the simulator's own P(purchase) of each cart session, averaged: the rate the data estimate
    expected = float(truth["p_purchase"].mean())
    assert step.ci_low <= expected <= step.ci_high
    assert (step.ci_low, step.ci_high) == pytest.approx(wilson_interval(step.count, result.steps[0].count))


def test_abandonment_recovers_the_simulated_abandoned_carts(sim_store: EventStore) -> None:
    truth = sim_store.query("SELECT count(*) AS n FROM truth_carts")["n"].iloc[0]
    sessions = sim_store.query("SELECT count(*) AS n FROM truth_sessions WHERE has_cart")["n"].iloc[0]
    result = CartAbandonment().compute(sim_store)
    assert (result.carts, result.abandoned) == (sessions, truth)
    # simulated carts carry a device, so the device comparison is on
    device = next(f for f in result.features if f.feature == "device")
    assert len(device.levels) >= 2 and device.p_value is not None


def test_price_sensitivity_tracks_the_simulated_customers(sim_store: EventStore) -> None:
    truth = (
        sim_store.con.sql("SELECT user_id, price_sensitivity AS true_sensitivity FROM truth_users")
        .to_arrow_table()
        .to_pandas()
        .set_index("user_id")
    )
    got = price_sensitivity(sim_store).join(truth, how="inner").dropna(subset=["sensitivity"])
    assert len(got) >= 300
    # a behavioural proxy, not the latent itself: clearly related (Spearman ~0.39 for this seed)
    rho, p = spearmanr(got["sensitivity"], got["true_sensitivity"])
    assert rho > 0.25 and p < 1e-6
    means = got.groupby("label")["true_sensitivity"].mean()
    assert means["price sensitive"] > means["neutral"] > means["premium seeker"]
