"""The decision log on a real store: outcomes joined from later events, idempotent logging, train/decide/OPE."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cartlift.act import (
    cart_contexts,
    decide_cart,
    decision_outcomes,
    load_policy,
    log_decisions,
    ope_from_log,
    run_simulation,
    train_from_log,
)
from cartlift.errors import DataError
from cartlift.store import EventStore

T0 = datetime(2026, 3, 2, 10, 0, 0)


def _event(
    eid: str, ts: datetime, user: str, session: str, kind: str, product: str, price: float, qty: int = 1
) -> dict:
    return {"event_id": eid, "ts": ts.isoformat() + "Z", "user_id": user, "session_id": session,
            "event_type": kind, "product_id": product, "price": price, "quantity": qty}  # fmt: skip


def _decision(did: str, cart: str, user: str, **kw: Any) -> dict:
    row = {"decision_id": did, "ts": T0, "user_id": user, "cart_id": cart, "policy": "explore",
           "action": "coupon_10", "channel": "email", "propensity": 0.25, "cart_value": 30.0, "margin": 12.0,
           "discount_value": 3.0, "cost": 0.01, "coupon_code": f"CL-{did}", "window_hours": 48.0,
           "coupon_expires_at": T0 + timedelta(hours=24)}  # fmt: skip
    return {**row, **kw}


def test_outcomes_are_joined_from_later_events(store: EventStore) -> None:
    h = timedelta(hours=1)
    store.ingest_records(
        [
            _event("a1", T0 - h, "u1", "s1", "cart_add", "p1", 10.0, 2),
            _event("a2", T0 - h, "u1", "s1", "cart_add", "p2", 10.0),
            _event("b1", T0 - h, "u2", "s2", "cart_add", "p1", 10.0),
            _event("c1", T0 - h, "u3", "s3", "cart_add", "p4", 30.0),
            # u1 buys a cart product 30 h later (the coupon expired at 24 h) and something else
            _event("a3", T0 + 30 * h, "u1", "s9", "purchase", "p1", 10.0, 2),
            _event("a4", T0 + 31 * h, "u1", "s9", "purchase", "p3", 99.0),
            # u2 bought before the decision and after the window: neither counts
            _event("b2", T0 - 0.5 * h, "u2", "s8", "purchase", "p1", 10.0),
            _event("b3", T0 + 50 * h, "u2", "s7", "purchase", "p1", 10.0),
            # u3 redeems within the coupon's life
            _event("c2", T0 + 2 * h, "u3", "s6", "purchase", "p4", 30.0),
            _event(
                "z1", T0 + 60 * h, "u9", "s5", "view", "p1", 10.0
            ),  # the newest event: every window closed
        ]
    )
    rows = pd.DataFrame(
        [_decision("d1", "s1", "u1"), _decision("d2", "s2", "u2"), _decision("d3", "s3", "u3")]
    )
    assert log_decisions(store, rows, context=pd.DataFrame({"cart_value": [30.0, 10.0, 30.0]})) == 3
    assert log_decisions(store, rows) == 0  # idempotent by decision id
    out = decision_outcomes(store).set_index("decision_id")
    assert out.loc["d1", "purchased"] and not out.loc["d1", "redeemed"]
    assert out.loc["d1", "revenue"] == pytest.approx(20.0)  # p3 was never in the cart
    assert out.loc["d1", "profit"] == pytest.approx(12.0 - 0.01)
    assert not out.loc["d2", "purchased"] and out.loc["d2", "profit"] == pytest.approx(-0.01)
    assert out.loc["d3", "redeemed"] and out.loc["d3", "profit"] == pytest.approx(12.0 - 3.0 - 0.01)
    assert out["matured"].all()
    assert (
        store.query("SELECT context FROM decisions WHERE decision_id = 'd1'")["context"][0]
        == '{"cart_value": 30.0}'
    )


def test_open_windows_are_not_matured(store: EventStore) -> None:
    store.ingest_records([_event("a1", T0 - timedelta(hours=1), "u1", "s1", "cart_add", "p1", 10.0),
                          _event("z", T0 + timedelta(hours=5), "u2", "s2", "view", "p1", 10.0)])  # fmt: skip
    log_decisions(store, pd.DataFrame([_decision("d1", "s1", "u1")]))
    assert decision_outcomes(store).empty  # no purchase yet and 43 h of the window left
    assert len(decision_outcomes(store, matured_only=False)) == 1


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"propensity": 0.0}, r"propensity must be in \(0, 1\]"),
        ({"propensity": 1.5}, r"propensity must be in \(0, 1\]"),
    ],
)
def test_bad_decisions_are_refused(store: EventStore, change: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        log_decisions(store, pd.DataFrame([_decision("d1", "s1", "u1", **change)]))
    with pytest.raises(DataError, match="lack required column"):
        log_decisions(store, pd.DataFrame([_decision("d1", "s1", "u1")]).drop(columns=["policy"]))


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EventStore, dict]]:
    """A small simulated store after exploration, with its decisions and outcome events."""
    path = Path(tmp_path_factory.mktemp("act")) / "store.duckdb"
    with EventStore(path) as s:
        result = run_simulation(
            n_users=2500, train_days=6, days=2, policies=["oracle", "nothing"], random_state=1, store=s
        )
        # time passes: an event eight days after the last one closes every outcome window
        last = s.query("SELECT max(ts) AS t FROM events")["t"][0]
        s.ingest_records([{"event_id": "later", "ts": (last + pd.Timedelta(days=8)).isoformat() + "Z",
                           "user_id": "u0", "session_id": "later", "event_type": "view", "product_id": "p0001",
                           "price": 1.0, "quantity": 1}])  # fmt: skip
        yield s, result


def test_exploration_is_logged_with_propensities_and_outcomes(explored: tuple[EventStore, dict]) -> None:
    store, result = explored
    logged = decision_outcomes(store, policies=["explore"], matured_only=False)
    assert len(logged) == result["training"]["decisions"] > 100
    # uniform among the allowed actions: the propensity is 1 / (number allowed), nothing is always allowed
    assert ((logged["propensity"] > 0) & (logged["propensity"] <= 1)).all()
    assert set(np.round(1 / logged["propensity"]).astype(int)) <= set(range(1, 10))
    assert logged["context"].str.startswith("{").all()
    assert 0.1 < logged["purchased"].mean() < 0.5


def test_train_decide_and_evaluate_on_the_store(explored: tuple[EventStore, dict], tmp_path: Path) -> None:
    store, _ = explored
    summary = train_from_log(store, policies=["explore"], random_state=0)
    assert summary["decisions"] > 100 and "cart_value" in summary["features"]
    policy = load_policy(store)
    carts = cart_contexts(store)
    last = str(carts["cart_id"].iloc[-1])
    first = decide_cart(store, last, random_state=0)
    assert first["logged"] and not first["already_decided"]
    assert first["action"] in policy.catalog_.names and first["reason"].startswith(first["action"])
    assert set(first["options"]) == set(policy.catalog_.names)
    again = decide_cart(store, last, random_state=1)
    assert again["already_decided"] and again["decision_id"] == first["decision_id"]
    with pytest.raises(DataError, match="not an abandoned cart"):
        decide_cart(store, "no-such-cart")
    log_file = tmp_path / "log.parquet"
    decision_outcomes(store, policies=["explore"], matured_only=False).to_parquet(log_file)
    uniform = ope_from_log(log_file, policy="nothing", reward="purchased", n_bootstrap=30)
    est = uniform["estimates"]
    assert set(est) == {"replay", "dm", "ips", "snips", "dr", "sndr"}
    logged = pd.read_parquet(log_file)
    nothing = logged.loc[logged["action"] == "nothing", "purchased"].mean()
    assert est["replay"]["value"] == pytest.approx(nothing)  # replay of "always nothing" = its rounds' mean
    profit = ope_from_log(log_file, policy="profit", store=store, reward="profit", n_bootstrap=30)
    assert np.isfinite(profit["estimates"]["dr"]["value"])
    with pytest.raises(DataError, match="no overlap"):
        ope_from_log(logged[logged["action"] != "coupon_10"], policy="coupon_all", reward="purchased")
