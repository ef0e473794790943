"""Cart features: batch SQL and the incremental state agree exactly, and nothing leaks from the future."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _cart_streams import assert_same_features, live_features, random_events

from cartlift.errors import DataError, InvalidParameterError
from cartlift.predict import FEATURE_NAMES, MOMENTS, FeatureContext, SessionState, cart_features
from cartlift.predict._context import FIRST_VISIT, customer_sql, medians_sql
from cartlift.store import EventStore

# -- batch == incremental ----------------------------------------------------------------------


def test_batch_equals_incremental_on_rees46(rees_store: EventStore) -> None:
    live = live_features(rees_store)
    for moments in MOMENTS:
        assert_same_features(cart_features(rees_store, moments=moments), live)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_equals_incremental_on_awkward_streams(random_stores: Any, seed: int) -> None:
    store = random_stores(seed)
    live = live_features(store)
    for moments in MOMENTS:
        assert_same_features(cart_features(store, moments=moments), live)


def test_batch_equals_incremental_on_a_simulated_store(sim_store: EventStore) -> None:
    live = live_features(sim_store)
    for moments in MOMENTS:
        assert_same_features(cart_features(sim_store, moments=moments), live)


def test_the_comparison_exercises_every_feature(random_stores: Any) -> None:
    # equality of constant columns would prove little: each feature must take several values
    frame = pd.concat([cart_features(random_stores(s), moments="cart_events") for s in (0, 1, 2)])
    flat = [name for name in FEATURE_NAMES if frame[name].dropna().nunique() < 2]
    assert not flat, f"features constant on the test streams: {flat}"
    assert frame[list(FEATURE_NAMES)].isna().any().any()  # and missing values occur too


# -- no leakage ---------------------------------------------------------------------------------


def _scramble_after(store: EventStore, cutoff: datetime, seed: int) -> None:
    """Rewrite every event after ``cutoff``: fields permuted among them, a third deleted, purchases added."""
    rng = np.random.default_rng(seed)
    future = store.query("SELECT * FROM events WHERE ts > ?", [cutoff])
    assert len(future) > 10
    for col in ("event_type", "product_id", "price", "quantity", "device", "channel", "user_id"):
        future[col] = future[col].to_numpy()[rng.permutation(len(future))]
    future = future[rng.random(len(future)) > 1 / 3]
    # a purchase right after the cutoff in sessions that have moments, to flip their labels
    sessions = store.query(
        "SELECT DISTINCT session_id, user_id FROM events WHERE event_type = 'cart_add' ORDER BY session_id"
    ).iloc[::2]
    extra = sessions.assign(
        event_id=[f"x{i}" for i in range(len(sessions))],
        ts=cutoff + timedelta(seconds=1),
        event_type="purchase",
        product_id="p-extra",
        quantity=1,
        price=5.0,
    )
    future = pd.concat([future, extra], ignore_index=True)[future.columns]
    store.con.execute("DELETE FROM events WHERE ts > ?", [cutoff])
    store.con.register("_future", future)
    store.con.execute("INSERT INTO events SELECT * FROM _future")
    store.con.unregister("_future")


def _before(frame: pd.DataFrame, cutoff: datetime) -> pd.DataFrame:
    return frame[frame["ts"] <= cutoff].reset_index(drop=True)


def _assert_no_leak(store: EventStore, cutoffs: list[datetime], seed: int) -> None:
    labels_changed = False
    for i, cutoff in enumerate(cutoffs):
        before = _before(cart_features(store, moments="cart_events"), cutoff)
        _scramble_after(store, cutoff, seed + i)
        after = _before(cart_features(store, moments="cart_events"), cutoff)
        assert len(before) > 5
        pd.testing.assert_frame_equal(
            before[["session_id", "seq", *FEATURE_NAMES]], after[["session_id", "seq", *FEATURE_NAMES]]
        )
        labels_changed |= bool((before["abandoned"] != after["abandoned"]).any())
    # the scramble did reach the future: labels, which look ahead, changed
    assert labels_changed


def test_scrambling_future_events_changes_no_feature_rees46(shared_data: Path, tmp_path: Path) -> None:
    with EventStore(tmp_path / "rees.duckdb") as store:
        store.ingest(shared_data / "rees46_multicategory_sample" / "2019-Oct.csv")
        ts = store.query("SELECT ts FROM events ORDER BY ts")["ts"]
        cutoffs = [ts.iloc[int(q * (len(ts) - 1))].to_pydatetime() for q in (0.8, 0.5)]
        _assert_no_leak(store, cutoffs, seed=1)


def test_scrambling_future_events_changes_no_feature_multi_day(tmp_path: Path) -> None:
    with EventStore(tmp_path / "random.duckdb") as store:
        events, catalog = random_events(5, n_users=60)
        store.ingest_records(events)
        store.ingest_products(catalog)
        cutoffs = [datetime(2025, 3, 4, 6, 0), datetime(2025, 3, 3, 1, 30), datetime(2025, 3, 2, 12, 0)]
        _assert_no_leak(store, cutoffs, seed=2)


# -- labels and moments, against plain Python ------------------------------------------------------


def _expected_labels(store: EventStore, frame: pd.DataFrame, window_hours: float | None) -> list[int]:
    events = store.query("SELECT * FROM events ORDER BY session_id, ts, event_id")
    events["seq"] = events.groupby("session_id").cumcount() + 1
    buys = events[events["event_type"] == "purchase"]
    first_user = events[events["seq"] == 1].set_index("session_id")["user_id"]
    out = []
    for r in frame.itertuples(index=False):
        same = buys[(buys["session_id"] == r.session_id) & (buys["seq"] > r.seq)]
        if window_hours is None:
            bought = len(same) > 0
        else:
            end = r.ts + timedelta(hours=window_hours)
            user = first_user[r.session_id]
            mine = buys[(buys["user_id"] == user) & (buys["ts"] > r.ts) & (buys["ts"] <= end)]
            bought = len(mine) > 0 or bool((same["ts"] == r.ts).any())
        out.append(0 if bought else 1)
    return out


@pytest.mark.parametrize("window_hours", [None, 24.0, 0.5])
def test_labels_follow_their_definition(random_stores: Any, window_hours: float | None) -> None:
    store = random_stores(1)
    frame = cart_features(store, moments="cart_events", window_hours=window_hours)
    assert frame["abandoned"].tolist() == _expected_labels(store, frame, window_hours)
    assert 0 < frame["abandoned"].mean() < 1


def test_moments_are_the_documented_events(random_stores: Any) -> None:
    store = random_stores(0)
    events = store.query("SELECT * FROM events ORDER BY session_id, ts, event_id")
    context = FeatureContext.from_store(store)
    cart_moments, last_cart, last_event = set(), {}, {}
    for session_id, group in events.groupby("session_id"):
        state = SessionState(context)
        for seq, event in enumerate(group.to_dict("records"), start=1):
            state.update(event)
            if event["event_type"] in ("cart_add", "cart_remove"):
                last_cart[session_id] = (seq, state.cart_open)
                if state.cart_open:
                    cart_moments.add((session_id, seq))
        last_event[session_id] = (len(group), state.cart_open)

    def keys(moments: str) -> set[tuple[str, int]]:
        frame = cart_features(store, moments=moments)
        return set(zip(frame["session_id"], frame["seq"].astype(int), strict=True))

    assert keys("cart_events") == cart_moments
    assert keys("last_cart_event") == {(s, q) for s, (q, open_) in last_cart.items() if open_}
    assert keys("last_event") == {(s, q) for s, (q, open_) in last_event.items() if open_}


# -- the live state on its own ----------------------------------------------------------------------


def _nan_equal(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def test_a_customer_without_history_gets_the_first_visit_values(rees_store: EventStore) -> None:
    sessions = (
        "(SELECT 's-new' AS session_id, 'nobody' AS user_id, TIMESTAMP '2019-10-01 01:00:00' AS start_ts)"
    )
    from_sql = rees_store.con.execute(customer_sql(sessions, f"({medians_sql()})")).fetchall()[0][1:]
    assert _nan_equal(tuple(math.nan if v is None else v for v in from_sql), FIRST_VISIT)
    features, carted = FeatureContext.from_store(rees_store).customer("nobody", datetime(2019, 10, 1, 1))
    assert _nan_equal(features, FIRST_VISIT) and carted == frozenset()
    assert FeatureContext().customer("nobody", datetime(2019, 10, 1, 1)) == (FIRST_VISIT, frozenset())


def _event(ts: Any, kind: str = "cart_add", **extra: Any) -> dict[str, Any]:
    return {"ts": ts, "user_id": "u", "session_id": "s", "event_type": kind, "product_id": "p", **extra}


def test_state_reads_timestamps_in_any_form() -> None:
    a, b = SessionState(), SessionState()
    a.update(_event(datetime(2026, 1, 2, 9, 30), price=10.0))
    a.update(_event(datetime(2026, 1, 2, 9, 31), kind="cart_remove"))
    b.update(_event("2026-01-02T09:30:00Z", price=10.0))
    b.update(_event(pd.Timestamp("2026-01-02 10:31", tz="Europe/Paris"), kind="cart_remove"))
    assert a.features() == pytest.approx(b.features(), nan_ok=True)
    assert a.features()["cart_quantity"] == 0.0 and not a.cart_open


def test_a_purchase_empties_only_its_product() -> None:
    state = SessionState()
    t = datetime(2026, 1, 2, 9, 0)
    state.update(_event(t, quantity=2, price=3.0))
    state.update(_event(t, product_id="q", price=4.0))
    state.update(_event(t + timedelta(minutes=1), kind="purchase", price=3.0))
    f = state.features()
    assert (f["cart_items"], f["cart_quantity"], f["cart_value"]) == (1.0, 1.0, 4.0)


def test_state_refuses_bad_input() -> None:
    state = SessionState()
    with pytest.raises(DataError, match="no events yet"):
        state.values()
    state.update(_event(datetime(2026, 1, 2, 9, 5)))
    with pytest.raises(DataError, match="must come in time order"):
        state.update(_event(datetime(2026, 1, 2, 9, 0)))
    with pytest.raises(DataError, match="ts must be a datetime"):
        state.update(_event(20260102))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"moments": "every_event"}, InvalidParameterError, "'moments' parameter .* one of"),
        ({"window_hours": 0.0}, InvalidParameterError, "'window_hours' parameter .* > 0"),
        ({"window_hours": "24"}, InvalidParameterError, "'window_hours' parameter"),
        ({"sessions": []}, DataError, "No sessions given"),
    ],
)
def test_cart_features_refuses_bad_arguments(
    rees_store: EventStore, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        cart_features(rees_store, **kwargs)


def test_cart_features_can_be_limited_to_sessions(rees_store: EventStore) -> None:
    full = cart_features(rees_store, moments="cart_events")
    some = sorted(full["session_id"].unique())[:3]
    part = cart_features(rees_store, moments="cart_events", sessions=some)
    expected = full[full["session_id"].isin(some)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected)
