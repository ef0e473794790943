"""The ground truth: potential outcomes, response types, purchase probabilities and tastes."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cartlift.simulate import ACTION_CHANNELS, ACTIONS, SimulatedStore, simulate

CONTACTS = ACTIONS[1:]


def _deliverable(carts: pd.DataFrame, action: str) -> pd.Series:
    channel = ACTION_CHANNELS[action]
    if channel == "email":
        return carts["email_consent"]
    if channel == "sms":
        return carts["sms_consent"]
    return carts["email_consent"] | carts["sms_consent"]


@pytest.fixture(scope="module")
def carts(large: SimulatedStore) -> pd.DataFrame:
    return large.truth["truth_carts"].to_pandas()


def test_potential_outcomes_are_probabilities_for_every_action(carts: pd.DataFrame) -> None:
    for action in ACTIONS:
        p = carts[f"p_{action}"]
        assert p.notna().all(), action
        assert ((p > 0) & (p < 1)).all(), action
    assert len(carts) > 3000


def test_response_types_react_as_defined(carts: pd.DataFrame) -> None:
    base = carts["p_nothing"]
    for action in CONTACTS:
        uplift = carts[f"p_{action}"] - base
        reach = _deliverable(carts, action)
        kind = carts["response_type"]
        assert (uplift[(kind == "persuadable") & reach] > 0).all(), action
        # sleeping dogs buy less when contacted
        assert (uplift[(kind == "sleeping_dog") & reach] < 0).all(), action
        assert (uplift[kind.isin(["sure_thing", "lost_cause"])] == 0).all(), action
        # a message nobody may receive changes nothing
        assert (uplift[~reach] == 0).all(), action
        assert ((kind == "sleeping_dog") & reach).sum() > 20, action
    # bigger coupons persuade more
    pers = carts[carts["response_type"] == "persuadable"]
    assert (pers["p_coupon_15"] >= pers["p_coupon_10"]).all()
    assert (pers["p_coupon_10"] >= pers["p_coupon_5"]).all()
    # sure things buy most often unprompted, lost causes least
    by_kind = carts.groupby("response_type")["p_nothing"].mean()
    assert by_kind["sure_thing"] > by_kind["sleeping_dog"] > by_kind["persuadable"] > by_kind["lost_cause"]


def test_unprompted_returns_follow_p_nothing_and_appear_in_the_events(
    large: SimulatedStore, carts: pd.DataFrame
) -> None:
    n = len(carts)
    p = carts["p_nothing"].to_numpy()
    # the realised baseline outcome is a Bernoulli draw per cart: its mean is within 4 standard errors
    assert abs(carts["recovered"].mean() - p.mean()) < 4 * math.sqrt((p * (1 - p)).sum()) / n
    # calibration within each quarter of p_nothing as well
    quarter = pd.qcut(p, 4, labels=False)
    for q in range(4):
        rows = quarter == q
        pq = p[rows]
        assert (
            abs(carts["recovered"][rows].mean() - pq.mean())
            < 4 * math.sqrt((pq * (1 - pq)).sum()) / rows.sum()
        )
    con = duckdb.connect()
    con.register("ev", large.events)
    con.register("carts", large.truth["truth_carts"])
    # every recovered cart has a later visit of the same customer that buys exactly its products
    mismatches = con.execute(
        """WITH kept AS (
               SELECT session_id, product_id,
                      sum(CASE event_type WHEN 'cart_add' THEN quantity ELSE -quantity END) AS qty
               FROM ev WHERE event_type IN ('cart_add', 'cart_remove') GROUP BY 1, 2 HAVING qty > 0),
           bought AS (SELECT session_id, product_id, sum(quantity) AS qty, min(ts) AS at
                      FROM ev WHERE event_type = 'purchase' GROUP BY 1, 2)
           SELECT count(*) FROM carts c JOIN kept k ON k.session_id = c.cart_id
           LEFT JOIN bought b ON b.session_id = c.return_session_id AND b.product_id = k.product_id
           WHERE c.recovered AND (b.qty IS DISTINCT FROM k.qty OR b.at <= c.abandoned_at
                                  OR b.at > c.abandoned_at + INTERVAL 7 DAY + INTERVAL 3 HOUR)"""
    ).fetchall()[0][0]
    assert mismatches == 0
    assert carts.loc[~carts["recovered"], "return_session_id"].isna().all()
    # the cart value of the truth is what the events say is left in the cart
    values = con.execute(
        """SELECT c.cart_value, sum(CASE e.event_type WHEN 'cart_add' THEN 1 ELSE -1 END * e.price * e.quantity)
           FROM carts c JOIN ev e ON e.session_id = c.cart_id AND e.event_type IN ('cart_add', 'cart_remove')
           GROUP BY c.cart_id, c.cart_value"""
    ).fetchall()
    got, want = np.array(values).T
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_session_purchase_probabilities_are_calibrated_and_informative(large: SimulatedStore) -> None:
    s = large.truth["truth_sessions"].to_pandas()
    assert s.loc[~s["has_cart"], "p_purchase"].isna().all()
    organic = s[(s["kind"] == "organic") & s["has_cart"]]
    p, y = organic["p_purchase"].to_numpy(), organic["purchased"].to_numpy()
    assert ((p > 0) & (p < 1)).all()
    for q in range(5):
        rows = pd.qcut(p, 5, labels=False) == q
        pq = p[rows]
        assert abs(y[rows].mean() - pq.mean()) < 4 * math.sqrt((pq * (1 - pq)).sum()) / rows.sum(), q
    # the best achievable AUC of an abandonment model: clearly above chance, clearly below 1
    auc = roc_auc_score(y, p)
    assert 0.7 < auc < 0.95
    returns = s[s["kind"] == "return_visit"]
    assert returns["purchased"].all()
    assert (returns["p_purchase"] == 1.0).all()


def _reference_scores(sim: SimulatedStore, user: int) -> np.ndarray:
    """The taste score of every product for one customer, straight from its definition."""
    cu, cat = sim._customers, sim._catalog
    a0 = float(sim.truth["truth_run"].column("add_intercept")[0].as_py())
    out = np.empty(cat.n_products)
    for c in range(len(cat.cat_start) - 1):
        items = np.arange(cat.cat_start[c], cat.cat_start[c + 1])
        aff = np.array(
            [float(np.dot(cu.factors[user].astype(float), cat.factors[j].astype(float))) for j in items]
        )
        w = np.exp(cat.log_popularity[items] + aff)
        p_view = cu.cat_pref[user, c] * w / w.sum()
        x = (
            a0
            + cu.intent[user]
            + 0.7 * aff
            + cat.quality[items]
            - cu.price_sensitivity[user] * cat.log_price_ratio[items]
        )
        out[items] = np.log(p_view) + np.log(1.0 / (1.0 + np.exp(-x)))
    return out


def test_taste_ranking_matches_its_definition(large: SimulatedStore) -> None:
    taste = large.taste_ranking().to_pandas()
    k = large.config.taste_top_k
    assert len(taste) == large.config.n_users * k
    ids = large._catalog.ids
    for user in (0, 17, 4321, 19_999):
        ref = _reference_scores(large, user)
        want = ids[np.argsort(-ref, kind="stable")[:k]]
        rows = taste[taste["user_id"] == f"u{user}"].sort_values("rank")
        assert rows["rank"].tolist() == list(range(1, k + 1))
        np.testing.assert_allclose(rows["score"].to_numpy(), np.sort(ref)[::-1][:k], rtol=1e-4, atol=1e-4)
        # ties within float32 noise aside, the same products in the same order
        assert (rows["product_id"].to_numpy() == want).mean() > 0.9, user


def test_customers_add_their_top_ranked_products_far_more_than_chance(large: SimulatedStore) -> None:
    con = duckdb.connect()
    con.register("ev", large.events)
    con.register("taste", large.taste_ranking())
    hit = con.execute(
        """SELECT avg(CASE WHEN t.product_id IS NULL THEN 0 ELSE 1 END)
           FROM (SELECT DISTINCT user_id, product_id FROM ev WHERE event_type = 'cart_add') a
           LEFT JOIN taste t USING (user_id, product_id)"""
    ).fetchall()[0][0]
    chance = large.config.taste_top_k / large.config.n_products
    assert hit > 10 * chance


def test_customers_drop_out_as_the_pareto_nbd_lifetimes_say() -> None:
    """Lifetimes are exponential at a Gamma(s, beta) rate: a Lomax(s, scale beta) distribution
    (scipy's), and no customer visits after dropping out."""
    from scipy import stats

    large = simulate(n_users=10_000, n_days=30, random_state=11, mean_lifetime_days=60.0)
    cfg = large.config
    users = large.truth["truth_users"].to_pandas()
    beta = cfg.dropout_shape * cfg.mean_lifetime_days
    for days in (7.0, 30.0, 90.0):
        expected = stats.lomax.cdf(days, cfg.dropout_shape, scale=beta)
        share = float((users["lifetime_days"] < days).mean())
        se = math.sqrt(expected * (1 - expected) / len(users))
        assert abs(share - expected) < 4 * se, (days, share, expected)
    sessions = large.truth["truth_sessions"].to_pandas()
    start = pd.Timestamp(cfg.start).tz_convert("UTC").tz_localize(None)
    organic = sessions[sessions["kind"] == "organic"]
    first_seen = (
        organic["started_at"].dt.tz_convert("UTC").dt.tz_localize(None) - start
    ).dt.total_seconds() / 86400
    end = users.set_index("user_id")["arrival_day"] + users.set_index("user_id")["lifetime_days"]
    # a session falls on a day the customer was still active (its hour is drawn within that day)
    last_day = np.floor(end.reindex(organic["user_id"]).to_numpy())
    assert (np.floor(first_seen.to_numpy()) <= last_day).all()


def test_spend_spread_makes_some_customers_spend_more_and_is_off_by_default() -> None:
    plain = simulate(n_users=3000, n_days=20, random_state=5)
    spread = simulate(n_users=3000, n_days=20, random_state=5, spend_spread=0.8)
    users = plain.truth["truth_users"].to_pandas()
    assert (users["spend_shift"] == 0).all()
    shifted = spread.truth["truth_users"].to_pandas().set_index("user_id")
    # every other trait keeps its draws from the seed (the shift is drawn after them)
    for trait in ("price_sensitivity", "intent", "lifetime_days", "response_type"):
        assert users.set_index("user_id")[trait].equals(shifted[trait])
    assert shifted["spend_shift"].std() == pytest.approx(0.8, rel=0.1)
    ev = spread.events.to_pandas()
    adds = ev[ev["event_type"] == "cart_add"].assign(v=lambda d: d["price"] * d["quantity"])
    value = adds.groupby(["user_id", "session_id"])["v"].sum().groupby("user_id").mean()
    per_user = value.to_frame("value").join(shifted["spend_shift"])
    quartile = pd.qcut(per_user["spend_shift"], 4, labels=False)
    means = per_user.groupby(quartile)["value"].mean()
    assert means.iloc[-1] > 1.5 * means.iloc[0]  # the top quarter's carts are worth far more
    assert np.corrcoef(np.log(per_user["value"]), per_user["spend_shift"])[0, 1] > 0.15
