"""The simulated events: cartlift's schema, consistent sessions, and determinism for a seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cartlift.events import EVENT_TYPES
from cartlift.events._formats import CARTLIFT_COLUMNS
from cartlift.simulate import SimulatedStore, simulate


def _con(sim: SimulatedStore) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # the event id's number is the event's position: the order the simulator laid events out in
    con.register("raw", sim.events)
    con.execute("CREATE TABLE ev AS SELECT *, CAST(substr(event_id, 2) AS BIGINT) AS pos FROM raw")
    return con


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def test_events_have_exactly_cartlifts_columns_and_no_truth(large: SimulatedStore) -> None:
    assert tuple(large.events.column_names) == CARTLIFT_COLUMNS
    assert set(pc.unique(large.events.column("event_type")).cast(pa.string()).to_pylist()) <= set(EVENT_TYPES)
    assert large.events.column("event_id").null_count == 0
    assert len(pc.unique(large.events.column("event_id"))) == large.events.num_rows
    assert all(name.startswith("truth_") for name in large.truth_tables())
    ts = large.events.column("ts")
    assert ts.type == pa.timestamp("ms", tz="UTC")
    first, last = pc.min(ts).as_py(), pc.max(ts).as_py()
    cfg = large.config
    assert first >= cfg.start
    # organic traffic ends after n_days; return visits may follow within the outcome window
    assert last <= cfg.start + timedelta(days=cfg.n_days + cfg.outcome_window_days + 1)
    assert last < datetime(2026, 11, 22, tzinfo=UTC)


def test_sessions_walk_the_funnel_in_order(large: SimulatedStore) -> None:
    con = _con(large)
    # each session is one customer's, its events contiguous, timestamps strictly increasing
    assert (
        _count(
            con,
            "SELECT count(*) FROM (SELECT session_id FROM ev GROUP BY 1 HAVING count(DISTINCT user_id) > 1)",
        )
        == 0
    )
    assert (
        _count(
            con,
            "SELECT count(*) FROM (SELECT session_id FROM ev GROUP BY 1 HAVING max(pos) - min(pos) + 1 <> count(*))",
        )
        == 0
    )
    assert (
        _count(
            con,
            """SELECT count(*) FROM (SELECT ts - lag(ts) OVER (PARTITION BY session_id ORDER BY pos) AS d FROM ev)
           WHERE d <= INTERVAL 0 SECOND""",
        )
        == 0
    )
    # no cart_add without an earlier view of the product, no removal or purchase without an earlier add
    for later, earlier in (("cart_add", "view"), ("cart_remove", "cart_add"), ("purchase", "cart_add")):
        orphans = _count(
            con,
            f"""SELECT count(*) FROM ev e WHERE e.event_type = '{later}' AND NOT EXISTS (
                    SELECT 1 FROM ev a WHERE a.session_id = e.session_id AND a.product_id = e.product_id
                      AND a.event_type = '{earlier}' AND a.pos < e.pos)""",
        )
        assert orphans == 0, (later, earlier)
    # checkout only after a cart_add; purchases only after the checkout, under one order id
    assert (
        _count(
            con,
            """SELECT count(*) FROM ev e WHERE e.event_type = 'checkout' AND NOT EXISTS (
               SELECT 1 FROM ev a WHERE a.session_id = e.session_id AND a.event_type = 'cart_add' AND a.pos < e.pos)""",
        )
        == 0
    )
    assert (
        _count(
            con,
            """SELECT count(*) FROM ev e WHERE e.event_type = 'purchase' AND NOT EXISTS (
               SELECT 1 FROM ev a WHERE a.session_id = e.session_id AND a.event_type = 'checkout' AND a.pos < e.pos)""",
        )
        == 0
    )
    assert (
        _count(
            con,
            """SELECT count(*) FROM (SELECT session_id FROM ev WHERE event_type = 'purchase' GROUP BY 1
                                 HAVING count(DISTINCT order_id) <> 1)""",
        )
        == 0
    )
    assert (
        _count(con, "SELECT count(*) FROM ev WHERE (event_type = 'purchase') <> (order_id IS NOT NULL)") == 0
    )
    # a product is bought only if it is still in the cart: removed products are not bought
    assert (
        _count(
            con,
            """SELECT count(*) FROM ev p JOIN ev r ON p.session_id = r.session_id AND p.product_id = r.product_id
           WHERE p.event_type = 'purchase' AND r.event_type = 'cart_remove'""",
        )
        == 0
    )
    # product events carry a product and its catalog price; checkout carries neither
    con.register("products", large.products)
    assert (
        _count(
            con,
            """SELECT count(*) FROM ev LEFT JOIN products p USING (product_id)
           WHERE event_type <> 'checkout' AND (p.product_id IS NULL OR ev.price <> p.price)""",
        )
        == 0
    )
    assert (
        _count(con, "SELECT count(*) FROM ev WHERE event_type = 'checkout' AND product_id IS NOT NULL") == 0
    )
    assert _count(con, "SELECT count(*) FROM ev WHERE quantity < 1") == 0


def test_visits_of_one_customer_are_more_than_30_minutes_apart(large: SimulatedStore) -> None:
    con = _con(large)
    gaps = con.execute(
        """SELECT min(start - lag_end) FROM (
               SELECT start, lag(finish) OVER (PARTITION BY user_id ORDER BY start) AS lag_end
               FROM (SELECT user_id, session_id, min(ts) AS start, max(ts) AS finish FROM ev GROUP BY 1, 2))"""
    ).fetchall()[0][0]
    # so re-sessionizing with cartlift's default 30-minute gap gives the same sessions back
    assert gaps > timedelta(minutes=30)


def test_same_seed_gives_identical_tables_and_another_seed_does_not() -> None:
    a = simulate(n_users=300, n_days=10, random_state=11)
    b = simulate(n_users=300, n_days=10, random_state=11)
    c = simulate(n_users=300, n_days=10, random_state=12)
    assert a.run_id == b.run_id
    assert a.events.equals(b.events)
    assert a.products.equals(b.products)
    for name, table in a.truth_tables().items():
        assert table.equals(b.truth_tables()[name]), name
    assert a.run_id != c.run_id
    assert not a.events.equals(c.events)
    assert not a.products.equals(c.products)
    assert not a.truth["truth_carts"].equals(c.truth["truth_carts"])


def test_a_generator_as_random_state_is_used_as_given() -> None:
    import numpy as np

    a = simulate(n_users=50, n_days=3, random_state=np.random.default_rng(5))
    b = simulate(n_users=50, n_days=3, random_state=np.random.default_rng(5))
    assert a.events.equals(b.events)


@pytest.mark.parametrize("start", [datetime(2025, 6, 1, tzinfo=UTC), datetime(2026, 3, 1, 12, tzinfo=UTC)])
def test_timestamps_start_at_the_configured_start(start: datetime) -> None:
    sim = simulate(n_users=100, n_days=5, start=start, random_state=0)
    first = pc.min(sim.events.column("ts")).as_py()
    assert start <= first < start + timedelta(days=5)


def test_the_period_ends_without_a_tail_of_returns_that_all_buy() -> None:
    # returns after the period are not simulated: the last days convert like the others
    sim = simulate(n_users=3000, n_days=20, random_state=5)
    ev = sim.events.select(["session_id", "ts", "event_type"]).to_pandas()
    end = pd.Timestamp(sim.config.start) + pd.Timedelta(days=20)
    starts = ev.groupby("session_id")["ts"].min()
    buyers = set(ev.loc[ev["event_type"] == "purchase", "session_id"])
    assert not starts[starts >= end].index.isin(buyers).any()  # only organic sessions straddle the end
    day = starts.dt.floor("D")
    bought = ev[ev["event_type"] == "purchase"].groupby("session_id").size().reindex(starts.index).notna()
    rate = bought.groupby(day).mean()
    assert rate.iloc[-3:].max() < 3 * rate.iloc[:-3].mean()
