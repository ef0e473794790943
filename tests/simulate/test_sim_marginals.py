"""Marginal statistics of a simulated store against its configuration.

Tolerances are 4 standard errors of the realised rate: a rate made of n independent Bernoulli
outcomes has a standard error of at most sqrt(p (1 - p) / n), whatever their individual
probabilities, so a correct simulator fails these checks with probability below 1e-4.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cartlift.simulate import RESPONSE_TYPES, SimulatedStore


def _se(p: float, n: int) -> float:
    return math.sqrt(p * (1.0 - p) / n)


def _session_facts(events: pa.Table) -> tuple[int, int, int]:
    """Sessions, sessions with a cart_add, and of those the ones without a purchase (as the store counts)."""
    con = duckdb.connect()
    con.register("ev", events)
    return con.execute(
        """SELECT count(*), count(*) FILTER (WHERE carted), count(*) FILTER (WHERE carted AND NOT bought)
           FROM (SELECT session_id, bool_or(event_type = 'cart_add') AS carted,
                        bool_or(event_type = 'purchase') AS bought
                 FROM ev GROUP BY session_id)"""
    ).fetchall()[0]


def test_cart_abandonment_rate_hits_the_target(large: SimulatedStore) -> None:
    _, carts, abandoned = _session_facts(large.events)
    rate = abandoned / carts
    assert rate == pytest.approx(large.stats.cart_abandonment_rate, abs=1e-12)
    target = large.config.cart_abandonment_rate
    assert abs(rate - target) < 4 * _se(target, carts), (rate, target, carts)
    assert 0.65 <= rate <= 0.75  # the realistic band of the default store


def test_conversion_rate_hits_the_target(large: SimulatedStore) -> None:
    sessions, _, _ = _session_facts(large.events)
    bought = large.events.filter(pc.equal(large.events.column("event_type"), "purchase")).column("session_id")
    rate = len(set(bought.to_pylist())) / sessions
    assert rate == pytest.approx(large.stats.conversion_rate, abs=1e-12)
    target = large.config.conversion_rate
    assert abs(rate - target) < 4 * _se(target, sessions), (rate, target, sessions)
    views = large.stats.events_by_type["view"]
    orders = len(set(bought.to_pylist()))
    assert 0.002 < orders / views < 0.02  # view -> purchase conversion of a few per mille to a few %


def test_checkout_completion_hits_the_target(large: SimulatedStore) -> None:
    s = large.truth["truth_sessions"].to_pandas()
    con = duckdb.connect()
    con.register("ev", large.events)
    checked = {
        r[0]
        for r in con.execute("SELECT DISTINCT session_id FROM ev WHERE event_type = 'checkout'").fetchall()
    }
    organic = s[(s["kind"] == "organic") & s["session_id"].isin(checked)]
    rate = organic["purchased"].mean()
    target = large.config.checkout_completion
    assert abs(rate - target) < 4 * _se(target, len(organic)), (rate, target, len(organic))


def test_prices_lie_in_their_category_range_and_costs_below_prices(large: SimulatedStore) -> None:
    p = large.products.to_pandas()
    for spec in large.config.categories:
        rows = p[p["category"] == spec.name]
        assert len(rows) > 0
        assert rows["price"].between(spec.price_low, spec.price_high).all(), spec.name
        margin = (rows["price"] - rows["cost"]) / rows["price"]
        # costs are rounded down to the cent, which can only widen the margin by < 1 cent
        assert (margin >= spec.margin_low - 1e-9).all(), spec.name
        assert (margin <= spec.margin_high + 0.01 / rows["price"] + 1e-9).all(), spec.name
        # log-normal inside the range: prices spread over it, not piled on its ends
        logs = np.log(rows["price"])
        assert logs.std() > 0.1 * np.log(spec.price_high / spec.price_low), spec.name
    assert (p["cost"] > 0).all()
    assert (p["cost"] < p["price"]).all()
    assert p["product_id"].is_unique
    assert len(p) == large.config.n_products


def test_customer_mixes_match_the_configuration(large: SimulatedStore) -> None:
    users = large.truth["truth_users"].to_pandas()
    n = len(users)
    cfg = large.config
    for kind in RESPONSE_TYPES:
        share = (users["response_type"] == kind).mean()
        assert abs(share - cfg.response_mix[kind]) < 4 * _se(cfg.response_mix[kind], n), kind
    for device, want in cfg.device_mix.items():
        share = (users["main_device"] == device).mean()
        assert abs(share - want) < 4 * _se(want, n), device
    assert abs(users["email_consent"].mean() - cfg.email_consent_rate) < 4 * _se(cfg.email_consent_rate, n)
    assert abs(users["sms_consent"].mean() - cfg.sms_consent_rate) < 4 * _se(cfg.sms_consent_rate, n)
    assert abs(users["existing_customer"].mean() - cfg.returning_share) < 4 * _se(cfg.returning_share, n)


def test_visits_and_views_follow_the_configured_means(large: SimulatedStore) -> None:
    cfg = large.config
    users = large.truth["truth_users"].to_pandas()
    sessions = large.truth["truth_sessions"].to_pandas()
    organic = sessions[sessions["kind"] == "organic"]
    per_user = organic.groupby("user_id").size().reindex(users["user_id"], fill_value=0)
    assert (per_user >= 1).all()  # every customer visits at least once
    # 1 + Poisson(rate x active days), active days from arrival to the end or the drop-out
    active = np.minimum(cfg.n_days - users["arrival_day"], users["lifetime_days"])
    expected = 1 + (users["visits_per_day"] * active).to_numpy()
    sd = np.sqrt(expected.clip(min=1)).mean()
    assert abs(per_user.mean() - expected.mean()) < 4 * sd / math.sqrt(len(users))
    con = duckdb.connect()
    con.register("ev", large.events)
    con.register("s", large.truth["truth_sessions"])
    views = np.array(
        con.execute(
            """SELECT count(*) FROM ev JOIN s USING (session_id)
               WHERE s.kind = 'organic' AND ev.event_type = 'view' GROUP BY session_id"""
        ).fetchall()
    )[:, 0]
    # geometric main views with mean views_per_session, plus a complement visit (mean 2 views)
    # with probability complement_rate; every default category has complements
    want = cfg.views_per_session + cfg.complement_rate * 2.0
    assert abs(views.mean() - want) < 4 * views.std() / math.sqrt(len(views)), (views.mean(), want)
