"""The global holdout and the program's impact: assignment, the decide path, the store's numbers
against an independent pandas computation, and interval coverage on the simulator's known truth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartlift.act import (
    DEFAULT_ACTIONS,
    ActionCatalog,
    Holdout,
    cart_contexts,
    current_holdout,
    decide_cart,
    impact,
    impact_from_frame,
    is_held_out,
    load_policy,
    run_simulation,
    set_holdout,
    train_from_log,
)
from cartlift.errors import InvalidParameterError
from cartlift.experiments import hash_units
from cartlift.simulate import simulate
from cartlift.store import EventStore


def test_assignment_is_the_experiments_hash_and_holds_the_share() -> None:
    ids = [f"s{i}" for i in range(20_000)]
    holdout = Holdout(share=0.1, salt="cartlift-holdout-1")
    held = holdout.assign(ids)
    assert np.array_equal(held, hash_units("cartlift-holdout-1", ids) < 0.1)
    assert held.mean() == pytest.approx(0.1, abs=0.01)
    assert [holdout.contains(i) for i in ids[:200]] == held[:200].tolist()
    with pytest.raises(InvalidParameterError, match=r"holdout share must be a number in \[0, 0.5\]"):
        Holdout(share=0.7)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    """A simulated store after randomised decisions with their simulated reactions, windows closed."""
    path = Path(tmp_path_factory.mktemp("impact")) / "store.duckdb"
    with EventStore(path) as s:
        run_simulation(n_users=2500, train_days=6, days=2, policies=["nothing"], random_state=3, store=s)
        last = s.query("SELECT max(ts) AS t FROM events")["t"][0]
        s.ingest_records([{"event_id": "later", "ts": (last + pd.Timedelta(days=8)).isoformat() + "Z",
                           "user_id": "u0", "session_id": "later", "event_type": "view", "product_id": "p0001",
                           "price": 1.0, "quantity": 1}])  # fmt: skip
        yield s


def test_impact_equals_an_independent_pandas_computation(program: EventStore) -> None:
    store = program
    doc = impact(store)
    # independently: abandoned carts (a cart_add, no purchase in the session), their products, the
    # customer's purchases of them within 168 hours after the session's last event
    ev = store.query("SELECT session_id, user_id, ts, event_type, product_id, price, quantity FROM events")
    by_session = ev.groupby("session_id")
    kinds = by_session["event_type"].agg(set)
    abandoned = kinds[kinds.map(lambda k: "cart_add" in k and "purchase" not in k)].index
    ends = by_session["ts"].max()[abandoned]
    users = by_session["user_id"].first()[abandoned]
    lines = ev[(ev.event_type == "cart_add") & ev.session_id.isin(abandoned)][["session_id", "product_id"]]
    buys = ev[ev.event_type == "purchase"]
    newest = ev["ts"].max()
    carts = pd.DataFrame({"cart_id": abandoned, "end": ends.to_numpy(), "user_id": users.to_numpy()})
    carts = carts[carts["end"] + pd.Timedelta(hours=168) <= newest]
    m = carts.merge(lines.drop_duplicates(), left_on="cart_id", right_on="session_id").merge(
        buys, on=["user_id", "product_id"], suffixes=("", "_buy")
    )
    m = m[(m["ts"] > m["end"]) & (m["ts"] <= m["end"] + pd.Timedelta(hours=168))]
    bought = set(m["cart_id"])
    revenue = m.assign(v=m["price"] * m["quantity"]).groupby("cart_id")["v"].sum()
    held = pd.Series(Holdout().assign(carts["cart_id"]), index=carts["cart_id"])
    assert doc["carts"] == {
        "holdout": int(held.sum()),
        "treated": int((~held).sum()),
        "open": doc["carts"]["open"],
    }
    rate_h = np.mean([c in bought for c in held.index[held]])
    rate_t = np.mean([c in bought for c in held.index[~held]])
    assert doc["conversion"]["holdout"] == pytest.approx(rate_h)
    assert doc["conversion"]["treated"] == pytest.approx(rate_t)
    rev = revenue.reindex(held.index, fill_value=0.0)
    expected_rev = (~held).sum() * (rev[~held].mean() - rev[held].mean())
    assert doc["incremental_revenue"]["estimate"] == pytest.approx(expected_rev)
    assert (
        doc["incremental_profit"]["ci_low"]
        < doc["incremental_profit"]["estimate"]
        < doc["incremental_profit"]["ci_high"]
    )
    assert sum(a["carts"] for a in doc["by_action"]) == doc["carts"]["treated"]
    assert doc["currency"] == "USD" and doc["holdout_share"] == 0.1
    # the randomised log messaged some held-out carts: the report says so instead of hiding it
    assert any("held-out cart(s) got a message anyway" in n for n in doc["notes"])


def _mover_reference(treated: np.ndarray, bought: np.ndarray, worth: np.ndarray) -> tuple[float, float]:
    """The rare-event interval of mean(treated) - mean(held out), from scipy's gamma and t quantiles."""
    from scipy import stats

    w, x = worth / len(worth), bought.astype(float)
    y, v = (w * x).sum(), (w * w * x).sum()
    low_h = stats.gamma.ppf(0.025, y * y / v, scale=v / y) if y > 0 else 0.0
    y_up, v_up = y + w.mean(), v + (w * w).mean()
    high_h = stats.gamma.ppf(0.975, y_up * y_up / v_up, scale=v_up / y_up)
    half = stats.t.ppf(0.975, len(treated) - 1) * treated.std(ddof=1) / np.sqrt(len(treated))
    diff = treated.mean() - y
    return diff - float(np.hypot(half, high_h - y)), diff + float(np.hypot(half, y - low_h))


def test_impact_per_segment_is_the_difference_within_each_segment(program: EventStore) -> None:
    doc = impact(program)
    ctx = cart_contexts(program).set_index("cart_id")
    ev = program.query("SELECT session_id, user_id, ts, event_type, product_id, price, quantity FROM events")
    lines = ev[ev.event_type == "cart_add"][["session_id", "product_id"]].drop_duplicates()
    buys = ev[ev.event_type == "purchase"]
    newest = ev["ts"].max()
    carts = ctx[ctx["ts"] + pd.Timedelta(hours=168) <= newest].reset_index()
    m = carts[["cart_id", "user_id", "ts"]].merge(lines, left_on="cart_id", right_on="session_id")
    m = m.merge(buys, on=["user_id", "product_id"], suffixes=("", "_buy"))
    m = m[(m["ts_buy"] > m["ts"]) & (m["ts_buy"] <= m["ts"] + pd.Timedelta(hours=168))]
    revenue = m.assign(v=m["price"] * m["quantity"]).groupby("cart_id")["v"].sum()
    carts["revenue"] = carts["cart_id"].map(revenue).fillna(0.0)
    carts["held"] = Holdout().assign(carts["cart_id"])
    carts["segment"] = np.where(carts["past_purchase_sessions"] > 0, "returning", "new")
    rows = {r["segment"]: r for r in doc["by_segment"] if r["dimension"] == "customer"}
    assert set(rows) == set(carts["segment"]) and all(r["randomised"] for r in rows.values())
    for name, group in carts.groupby("segment"):
        t, h = group.loc[~group["held"], "revenue"], group.loc[group["held"], "revenue"]
        row = rows[name]
        assert row["carts"] == {"holdout": len(h), "treated": len(t)}
        got = row["incremental_revenue"]
        if min(len(t), len(h)) < 10:  # too few carts for an interval: counts only
            assert got["estimate"] is None and "no interval yet" in row["note"]
            continue
        assert got["per_cart"] == pytest.approx(t.mean() - h.mean())
        assert got["estimate"] == pytest.approx(len(t) * (t.mean() - h.mean()))
        # a held-out cart is worth its revenue if bought, its value otherwise
        held_group = group[group["held"]]
        worth = np.where(held_group["revenue"] > 0, held_group["revenue"], held_group["cart_value"])
        low, high = _mover_reference(t.to_numpy(float), (held_group["revenue"] > 0).to_numpy(), worth)
        assert (got["ci_low"], got["ci_high"]) == pytest.approx((len(t) * low, len(t) * high), rel=1e-6)
    dims = {r["dimension"] for r in doc["by_segment"]}
    assert dims == {"customer", "cart value", "device"}
    values = [r["segment"] for r in doc["by_segment"] if r["dimension"] == "cart value"]
    assert values[0].startswith("under ") and values[-1].endswith("and more")  # low to high
    for dim in dims:  # each dimension splits the same carts
        assert (
            sum(r["carts"]["treated"] for r in doc["by_segment"] if r["dimension"] == dim)
            == doc["carts"]["treated"]
        )


def test_held_out_carts_get_no_message_and_a_recorded_decision(program: EventStore) -> None:
    store = program
    train_from_log(store, policies=["explore"], random_state=0)
    load_policy(store)
    set_holdout(store, 0.5)  # a new phase: half the carts held out, so both groups show up
    assert current_holdout(store).phase == 2
    decided = set(store.query("SELECT cart_id FROM decisions")["cart_id"])
    fresh = [c for c in cart_contexts(store)["cart_id"].astype(str) if c not in decided][:12]
    assert fresh, "the store needs carts nobody decided for yet"
    seen = set()
    for cart in fresh:
        doc = decide_cart(store, cart, random_state=0)
        held = current_holdout(store).contains(cart)
        seen.add(held)
        assert is_held_out(store, cart) == held
        if held:
            assert (doc["action"], doc["policy"], doc["channel"]) == ("nothing", "holdout", "none")
            assert doc["reason"].startswith("global holdout (50 % of carts, phase 2)")
        else:
            assert doc["policy"] != "holdout"
    assert seen == {True, False}
    recorded = store.query("SELECT cart_id, held_out, phase FROM holdout_assignments")
    assert set(fresh) <= set(recorded["cart_id"]) and set(recorded["phase"]) == {2}
    set_holdout(store, 0.5)  # the same share changes nothing
    assert current_holdout(store).phase == 2


def _one_program(seed: int, share: float = 0.1, **store: float) -> tuple[dict, float]:
    """The impact document of `_program_frame` and the true incremental profit."""
    frame, truth = _program_frame(seed, share, **store)
    return impact_from_frame(frame, holdout_share=share), truth


def _program_frame(seed: int, share: float = 0.1, **store: float) -> tuple[pd.DataFrame, float]:
    """Simulate carts, hold out a share, apply a fixed rule to the rest, draw outcomes from the truth.

    ``store`` overrides the simulated store (default: 6,000 customers, 14 days, no drop-out).
    """
    sim = simulate(random_state=seed, **{"n_users": 6000, "n_days": 14, **store})
    carts = sim.truth["truth_carts"].to_pandas()
    catalog = ActionCatalog(DEFAULT_ACTIONS)
    names = catalog.names
    value = carts["cart_value"].to_numpy(float)
    margin = value - carts["cart_cost"].to_numpy(float)
    email, sms = carts["email_consent"].to_numpy(bool), carts["sms_consent"].to_numpy(bool)
    # the rule: an e-mail reminder where there is consent, otherwise a 10 % coupon by SMS or nothing
    action = np.where(email, "reminder_email_1h", np.where(sms, "coupon_10", "nothing"))
    a = np.array([names.index(x) for x in action])
    rows = np.arange(len(carts))
    discount = catalog.discounts(value)[rows, a]
    cost = np.where(action == "nothing", 0.0, catalog.costs(email, sms)[rows, a])
    p_treated = np.array([carts[f"p_{x}"].iloc[i] for i, x in enumerate(action)])
    p_nothing = carts["p_nothing"].to_numpy(float)
    held = Holdout(share=share, salt=f"coverage-{seed}").assign(carts["cart_id"])
    rng = np.random.default_rng(seed)
    bought = rng.random(len(carts)) < np.where(held, p_nothing, p_treated)
    profit = np.where(held, bought * margin, bought * (margin - discount) - cost)
    frame = pd.DataFrame(
        {"held_out": held, "purchased": bought, "revenue": bought * value, "profit": profit,
         "action": np.where(held, None, action), "margin": margin, "cart_value": value,
         "cost": np.where(held, 0.0, cost)}
    )  # fmt: skip
    truth = float(np.sum((p_treated * (margin - discount) - cost - p_nothing * margin)[~held]))
    return frame, truth


def test_one_simulated_program_has_a_sensible_interval() -> None:
    doc, truth = _one_program(0)
    p = doc["incremental_profit"]
    assert p["ci_low"] < p["estimate"] < p["ci_high"]
    assert doc["carts"]["holdout"] > 50
    assert abs(p["estimate"] - truth) < 3 * (p["ci_high"] - p["ci_low"])


def test_the_profit_interval_counts_what_unbought_held_out_carts_were_worth() -> None:
    """The program's profit interval, computed independently from the held-out margins (gamma
    limits of the weighted purchases, Tiwari-Clegg-Zou upper limit), the treated carts' Student
    interval and the MOVER; without margins it is Welch's, as before."""
    from scipy import stats

    frame, _ = _program_frame(0)
    doc = impact_from_frame(frame, holdout_share=0.1)
    held = frame["held_out"].to_numpy(bool)
    nt = int((~held).sum())
    t = frame["profit"].to_numpy(float)[~held]
    low, high = _mover_reference(
        t, frame["purchased"].to_numpy(bool)[held], frame["margin"].to_numpy(float)[held]
    )
    p = doc["incremental_profit"]
    assert p["per_cart"] == pytest.approx(t.mean() - frame["profit"].to_numpy(float)[held].mean())
    assert (p["ci_low"], p["ci_high"]) == pytest.approx((nt * low, nt * high), rel=1e-9)
    # longer below the estimate than above: the big held-out carts that did not buy could have
    assert p["estimate"] - p["ci_low"] > p["ci_high"] - p["estimate"]
    welch = impact_from_frame(frame.drop(columns=["margin", "cart_value"]), holdout_share=0.1)
    ci = stats.ttest_ind(t, frame["profit"].to_numpy(float)[held], equal_var=False).confidence_interval(0.95)
    got = welch["incremental_profit"]
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((nt * ci.low, nt * ci.high), rel=1e-6)
    negative = frame.assign(margin=np.where(held, -1.0, frame["margin"]))  # a loss-making cart: Welch
    assert impact_from_frame(negative, holdout_share=0.1)["incremental_profit"]["ci_low"] == pytest.approx(
        got["ci_low"]
    )


@pytest.mark.slow
def test_the_95_interval_covers_the_true_incremental_profit_in_90_percent_of_50_seeds() -> None:
    """The demo's store (its customers, days and drop-out), 50 seeds: the interval covers the truth.

    Measured: 46 of 50 (191 of 200 seeds); Welch's interval covered 46 of 50 (183 of 200).
    """
    from cartlift.cli._simulate import DEMO_DAYS, DEMO_LIFETIME_DAYS, DEMO_USERS

    demo = {"n_users": DEMO_USERS, "n_days": DEMO_DAYS, "mean_lifetime_days": DEMO_LIFETIME_DAYS}
    covered = []
    for seed in range(50):
        doc, truth = _one_program(seed, **demo)
        p = doc["incremental_profit"]
        covered.append(p["ci_low"] <= truth <= p["ci_high"])
    assert sum(covered) >= 45, f"covered in {sum(covered)} of 50 seeds"
