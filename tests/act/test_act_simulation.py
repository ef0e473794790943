"""Policies against the simulated store's true reactions: the profit policy pays, the bandit learns."""

from __future__ import annotations

import numpy as np
import pytest

from cartlift.act import ActionCatalog, Rules, run_simulation, score_decisions
from cartlift.errors import InvalidParameterError


@pytest.fixture(scope="module")
def small() -> dict:
    return run_simulation(n_users=3000, train_days=6, days=3, random_state=0)


def test_every_policy_is_scored_on_the_same_carts(small: dict) -> None:
    pols = small["policies"]
    assert set(pols) == {"oracle", "nothing", "coupon_all", "reminder_all", "profit", "thompson"}
    carts = {p["carts"] for p in pols.values()}
    assert carts == {small["setup"]["test_carts"]} and small["setup"]["test_carts"] > 50
    for name, p in pols.items():
        assert sum(p["actions"].values()) == p["carts"], name
        assert 0 < p["conversion"] < 1
    assert set(pols["nothing"]["actions"]) == {"nothing"} and pols["nothing"]["discount_spent"] == 0
    assert pols["reminder_all"]["coupons"] == 0 and pols["coupon_all"]["coupons"] > 0
    # the oracle knows every reaction: no policy beats it under the same rules
    top = pols["oracle"]["profit_per_cart"]
    assert all(p["profit_per_cart"] <= top + 1e-9 for p in pols.values())
    assert pols["oracle"]["share_of_oracle"] == 1.0


def test_score_decisions_by_hand() -> None:
    import pandas as pd

    catalog = ActionCatalog()
    ctx = pd.DataFrame({"cart_value": [100.0, 40.0], "margin": [30.0, 10.0],
                        "email_consent": [True, False], "sms_consent": [False, True]})  # fmt: skip
    p = np.full((2, len(catalog)), 0.2)
    p[0, catalog.index("coupon_10")] = 0.5
    got = score_decisions(np.array([catalog.index("coupon_10"), 0]), ctx, p, catalog)
    # cart 0: 0.5 * (30 - 10) - 0.002 (e-mail); cart 1: 0.2 * 10
    assert got["profit_per_cart"] == pytest.approx((0.5 * 20 - 0.002 + 0.2 * 10) / 2)
    assert got["discount_spent"] == pytest.approx(0.5 * 10)
    assert got["conversion"] == pytest.approx(0.35) and got["messages"] == 1 and got["coupons"] == 1


def test_bandit_regret_is_reported_per_day(small: dict) -> None:
    days = small["bandit"]["per_day"]
    assert [d["day"] for d in days] == sorted(d["day"] for d in days)
    assert sum(d["carts"] for d in days) == small["setup"]["train_carts"] + small["setup"]["test_carts"]
    cum = np.array([d["cumulative_regret"] for d in days])
    np.testing.assert_allclose(np.diff(cum), [d["regret"] for d in days[1:]])
    # the oracle also knows each customer: its regret is at least the in-class regret
    assert all(d["regret_vs_oracle"] >= d["regret"] - 1e-9 for d in days)


def test_same_seed_same_result() -> None:
    a = run_simulation(n_users=1500, train_days=4, days=2, policies=["oracle", "profit"], random_state=3)
    b = run_simulation(n_users=1500, train_days=4, days=2, policies=["oracle", "profit"], random_state=3)
    assert a["policies"] == b["policies"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policies": ["greedy"]}, "Unknown policy greedy"),
        ({"days": 0}, "train_days and days must be ints >= 1"),
    ],
)
def test_invalid_simulation_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        run_simulation(n_users=100, **kwargs)


def test_a_coupon_budget_limits_coupon_spending() -> None:
    free = run_simulation(n_users=2000, train_days=3, days=3, policies=["coupon_all"], random_state=2)
    tight = run_simulation(n_users=2000, train_days=3, days=3, policies=["coupon_all"], random_state=2,
                           rules=Rules(coupon_budget_per_day=20.0))  # fmt: skip
    assert tight["policies"]["coupon_all"]["coupons"] < free["policies"]["coupon_all"]["coupons"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_profit_policy_earns_at_least_90_percent_of_the_oracle(seed: int) -> None:
    """The issue's claim, at the default size (40,000 customers, 28 days of exploration, 7 days)."""
    result = run_simulation(random_state=seed)
    pols = result["policies"]
    share = pols["profit"]["share_of_oracle"]
    assert share >= 0.90, share
    for baseline in ("nothing", "coupon_all", "reminder_all"):
        assert pols["profit"]["profit_per_cart"] > pols[baseline]["profit_per_cart"], baseline
    bandit = result["bandit"]
    assert bandit["regret_per_cart_second_half"] < bandit["regret_per_cart_first_half"]
    assert bandit["growth_exponent"] < 0.9  # cumulative regret ~ decisions^k, sub-linear
    # the learned uplift ranks carts better than chance against the true uplift (the response
    # type itself is hidden, so the ranking comes from consent, margin and history)
    assert result["uplift"]["mean_true_qini"] > 0


def test_the_live_path_decides_like_the_batch_path(small: dict) -> None:
    from cartlift.act import Ledger

    policy = small["_policy"]
    test, _ = small["_test"]
    batch = policy.decide(test, Ledger(rules=policy.rules_), reasons=True)
    ledger = Ledger(rules=policy.rules_)
    live = [policy.decide_one(rec, ledger) for rec in test.to_dict("records")]
    profit = policy.expected_profit(test)
    for i, one in enumerate(live):
        assert one["expected_profit"] == pytest.approx(profit[i, policy.catalog_.index(one["action"])])
    # both take an action of the same (best allowed) value; the S-learner's trees often give two
    # actions the same value, and such ties are broken by different random draws
    idx = np.arange(len(test))
    chosen_live = policy.catalog_.indices([d["action"] for d in live])
    chosen_batch = policy.catalog_.indices(batch["action"])
    np.testing.assert_allclose(profit[idx, chosen_live], profit[idx, chosen_batch])
    tied = [d["propensity"] < 1 for d in live]
    assert any(tied) and all(d["reason"].startswith(d["action"]) for d in live)


def test_a_catalog_the_simulator_cannot_score_is_refused() -> None:
    from cartlift.act import DEFAULT_ACTIONS, Action

    catalog = ActionCatalog(
        [*DEFAULT_ACTIONS, Action("coupon_5_off", kind="coupon", channel="any", discount_amount=5.0)]
    )
    with pytest.raises(InvalidParameterError, match="the catalog also has coupon_5_off"):
        run_simulation(n_users=100, catalog=catalog)
