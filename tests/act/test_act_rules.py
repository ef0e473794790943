"""Actions, costs and the rules: consent, quiet hours, caps, budgets and coupons, checked decision by decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartlift.act import Action, ActionCatalog, FixedPolicy, Ledger, Rules, decide_in_order
from cartlift.errors import DataError, InvalidParameterError

DAY = 86_400.0


def test_expected_profit_matches_the_formula_by_hand() -> None:
    catalog = ActionCatalog(
        [
            Action("nothing", kind="nothing", channel="none"),
            Action("mail", kind="reminder", channel="email", email_cost=0.5),
            Action(
                "ten_pct", kind="coupon", channel="any", discount_share=0.10, email_cost=0.5, sms_cost=2.0
            ),
            Action("five_off", kind="coupon", channel="sms", discount_amount=5.0, sms_cost=2.0),
        ]
    )
    p = np.array([[0.2, 0.3, 0.5, 0.4]])
    got = catalog.expected_profit(p, np.array([100.0]), np.array([40.0]), np.array([False]), np.array([True]))
    # nothing 0.2*40; mail cannot reach (no e-mail consent): no cost; 10 % by SMS; 5 off by SMS
    want = [0.2 * 40, 0.3 * 40, 0.5 * (40 - 10) - 2.0, 0.4 * (40 - 5) - 2.0]
    np.testing.assert_allclose(got[0], want)
    # a fixed amount is capped at the cart value
    assert float(catalog.get("five_off").discount(3.0)) == 3.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "x y"}, InvalidParameterError, "letters, digits and underscores"),
        ({"name": "a", "kind": "gift"}, InvalidParameterError, "'kind' parameter of Action"),
        ({"name": "a", "channel": "fax"}, InvalidParameterError, "'channel' parameter of Action"),
        ({"name": "a", "discount_share": 1.0, "kind": "coupon"}, InvalidParameterError, "discount_share"),
        ({"name": "a", "discount_share": 0.1}, InvalidParameterError, "gives a discount but is of kind"),
        ({"name": "a", "kind": "nothing"}, InvalidParameterError, "kind 'nothing' goes with channel 'none'"),
        ({"name": "a", "email_cost": -1.0}, InvalidParameterError, "email_cost"),
    ],
)
def test_action_rejects_bad_definitions(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Action(**kwargs)


@pytest.mark.parametrize(
    ("actions", "match"),
    [
        ([Action("mail")], "first action of a catalog must be the do-nothing"),
        ([Action("nothing", kind="nothing", channel="none"), Action("m"), Action("m")], "repeated: m"),
        ([], "at least one Action"),
    ],
)
def test_catalog_rejects_bad_catalogs(actions: list, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        ActionCatalog(actions)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quiet_hours": (21, 25)}, "'quiet_hours' parameter of Rules"),
        ({"quiet_channels": ("fax",)}, "'quiet_channels' parameter of Rules"),
        (
            {"max_messages_per_week": -1},
            "'max_messages_per_week' parameter of Rules must be None or an int >= 0",
        ),
        ({"coupon_budget_per_day": -5.0}, "'coupon_budget_per_day'"),
        ({"coupon_ttl_hours": 0.0}, "'coupon_ttl_hours'"),
        ({"utc_offset_hours": 20.0}, "'utc_offset_hours'"),
    ],
)
def test_rules_reject_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        Rules(**kwargs)


def _allowed(ledger: Ledger, catalog: ActionCatalog, **kw: object) -> dict[str, str]:
    args = {
        "ts": 10 * 3600.0,
        "user_id": "u1",
        "cart_id": "c1",
        "value": 50.0,
        "email": True,
        "sms": True,
        **kw,
    }
    return dict(zip(catalog.names, ledger.allowed(catalog, **args), strict=True))  # type: ignore[arg-type]


def test_each_rule_gives_its_reason() -> None:
    catalog = ActionCatalog()
    rules = Rules(coupon_budget_per_day=12.0, max_messages_per_week=2, min_cart_value_for_coupon=20.0)
    ledger = Ledger(rules=rules)
    assert all(r == "" for r in _allowed(ledger, catalog).values())
    no_email = _allowed(ledger, catalog, email=False)
    assert no_email["reminder_email_1h"] == "no email consent" and no_email["coupon_10"] == ""
    assert _allowed(ledger, catalog, email=False, sms=False)["coupon_10"] == "no e-mail or SMS consent"
    # 22:00 UTC: SMS is in the quiet hours (21-8), e-mail is not
    late = _allowed(ledger, catalog, ts=22 * 3600.0)
    assert late["reminder_sms_1h"] == "quiet hours for sms" and late["reminder_email_1h"] == ""
    assert _allowed(ledger, catalog, value=19.99)["coupon_5"] == "cart below 20 for a coupon"
    code, expires = ledger.record(
        catalog.get("coupon_10"), ts=10 * 3600.0, user_id="u1", cart_id="c1", value=50.0, decision_id="d1"
    )
    assert code is not None and code.startswith("CL-") and expires == 10 * 3600.0 + 72 * 3600.0
    assert _allowed(ledger, catalog)["coupon_5"] == "cart already has a coupon"
    assert _allowed(ledger, catalog, cart_id="c2")["coupon_5"] == "customer holds an unexpired coupon"
    # another customer: 5 of the 12 budget is promised; a 15 % coupon on 50 (7.5) would exceed it
    other = _allowed(ledger, catalog, user_id="u2", cart_id="c3")
    assert other["coupon_15"] == "daily coupon budget (12) would be exceeded" and other["coupon_10"] == ""
    ledger.record(
        catalog.get("reminder_email_1h"),
        ts=11 * 3600.0,
        user_id="u1",
        cart_id="c4",
        value=50.0,
        decision_id="d2",
    )
    assert (
        _allowed(ledger, catalog, cart_id="c5")["reminder_email_24h"] == "frequency cap (2 messages a week)"
    )
    # after the coupon expired and the messages are 8 days old, everything is allowed again
    later = _allowed(ledger, catalog, ts=9 * DAY, cart_id="c6")
    assert later["coupon_5"] == "" and later["reminder_email_1h"] == ""


def test_quiet_hours_follow_the_local_offset() -> None:
    rules = Rules(quiet_hours=(21, 8), utc_offset_hours=2.0)
    assert rules.in_quiet_hours(19.5 * 3600.0)  # 21:30 local
    assert not rules.in_quiet_hours(6.5 * 3600.0)  # 08:30 local
    assert Rules(quiet_hours=(1, 5)).in_quiet_hours(3 * 3600.0)
    assert not Rules(quiet_hours=None).in_quiet_hours(3 * 3600.0)


def _random_carts(n: int, rng: np.random.Generator) -> pd.DataFrame:
    ts = np.sort(rng.uniform(0, 60 * DAY, n))
    return pd.DataFrame(
        {
            "cart_id": [f"c{i}" for i in range(n)],
            "user_id": [f"u{u}" for u in rng.integers(0, 60, n)],
            "ts": pd.to_datetime(ts, unit="s"),
            "cart_value": rng.lognormal(3.5, 0.8, n),
            "margin": rng.uniform(5, 30, n),
            "email_consent": rng.random(n) < 0.7,
            "sms_consent": rng.random(n) < 0.4,
        }
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_caps_and_budgets_hold_over_a_long_run(seed: int) -> None:
    rng = np.random.default_rng(seed)
    carts = _random_carts(3000, rng)
    catalog = ActionCatalog()
    rules = Rules(max_messages_per_week=3, coupon_budget_per_day=60.0, min_cart_value_for_coupon=20.0)
    # a greedy coupon-lover: it asks for the biggest coupon, so every rule gets tested
    made = FixedPolicy("greedy", ["coupon_15", "coupon_10", "limited_time_offer", "reminder_sms_1h",
                                  "reminder_email_24h"], rules=rules, random_state=seed).decide(carts)  # fmt: skip
    made["send"] = pd.to_datetime(made["ts"]) + pd.to_timedelta(
        [catalog.get(a).delay_hours for a in made["action"]], unit="h"
    )
    messages = made[made["channel"] != "none"]
    for _, sent in messages.groupby("user_id"):
        t = np.sort(sent["send"].to_numpy(dtype="datetime64[s]").astype(float))
        # most messages in any 7-day window: the window starting at each message
        most = max(np.searchsorted(t, t + 7 * DAY, side="left") - np.arange(t.size))
        assert most <= 3
    coupons = made[made["coupon_code"].notna()]
    assert coupons["coupon_code"].is_unique and coupons["cart_id"].is_unique
    assert (coupons["cart_value"] >= 20.0).all()
    per_day = coupons.groupby(pd.to_datetime(coupons["ts"]).dt.floor("D"))["discount_value"].sum()
    assert per_day.max() <= 60.0 + 1e-9 and per_day.max() > 40.0  # the budget binds and holds
    consent = carts.set_index("cart_id").loc[made["cart_id"]]
    assert not ((made["channel"].to_numpy() == "email") & ~consent["email_consent"].to_numpy()).any()
    assert not ((made["channel"].to_numpy() == "sms") & ~consent["sms_consent"].to_numpy()).any()
    sms_hour = pd.to_datetime(made.loc[made["channel"] == "sms", "ts"]).dt.hour + 1
    assert not (((sms_hour % 24) >= 21) | ((sms_hour % 24) < 8)).any()
    # a coupon is never issued to a customer holding an unexpired one
    for _, held in coupons.groupby("user_id"):
        t = pd.to_datetime(held["ts"]).sort_values().to_numpy()
        assert (np.diff(t) >= np.timedelta64(72, "h")).all()


def test_ledger_rebuilt_from_the_log_blocks_the_same_actions() -> None:
    rng = np.random.default_rng(3)
    carts = _random_carts(400, rng)
    rules = Rules(max_messages_per_week=2, coupon_budget_per_day=30.0)
    catalog = ActionCatalog()
    live = Ledger(rules=rules)
    made = decide_in_order(carts, np.zeros((400, len(catalog))), catalog=catalog, ledger=live, policy="x",
                           rng=rng, epsilon=1.0)  # fmt: skip
    rebuilt = Ledger.from_decisions(made, rules, catalog)
    probe = {"ts": 61 * DAY, "user_id": "u3", "cart_id": "new", "value": 80.0, "email": True, "sms": True}
    assert live.allowed(catalog, **probe) == rebuilt.allowed(catalog, **probe)  # type: ignore[arg-type]
    assert rebuilt.codes == live.codes
    assert dict(rebuilt.coupon_spend) == pytest.approx(dict(live.coupon_spend))


def test_decisions_record_reasons_propensities_and_break_ties_at_random() -> None:
    carts = _random_carts(2000, np.random.default_rng(5)).assign(email_consent=True, sms_consent=True)
    catalog = ActionCatalog()
    values = np.zeros((2000, len(catalog)))
    values[:, [1, 2]] = 1.0  # two e-mail reminders tie for best
    made = decide_in_order(carts, values, catalog=catalog, ledger=Ledger(rules=Rules(max_messages_per_week=None)),
                           policy="tie", rng=np.random.default_rng(0))  # fmt: skip
    share = (made["action"] == "reminder_email_1h").mean()
    assert 0.45 < share < 0.55
    assert np.allclose(made["propensity"], 0.5)
    assert made["reason"].str.contains("vs nothing").all()
    with pytest.raises(DataError, match="lack column"):
        decide_in_order(carts.drop(columns=["margin"]), values, catalog=catalog, ledger=Ledger(), policy="x",
                        rng=np.random.default_rng(0))  # fmt: skip
