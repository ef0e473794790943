"""Funnel with a breakdown on ~10M simulated events: cartlift against a hand-written DuckDB query.

Both answer the same question on the same DuckDB file, in one run: per session, the first view
(its product's category is the breakdown), then the first cart_add at or after it, the first
checkout after that and the first purchase after that (no window: the session bounds it).
The hand-written query is what an analyst would write for exactly this funnel; cartlift runs
its general engine (any steps, windows, order modes) and also computes time to convert, the
trend, Wilson intervals and the chi-square tests. Goal: cartlift / hand-written <= 1.5.

    .venv/bin/python benchmarks/funnel.py                # ~10M events
    .venv/bin/python benchmarks/funnel.py --events 1e6   # a quicker look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from cartlift.analytics import Funnel
from cartlift.store import EventStore

HAND_WRITTEN = """
WITH ev AS (
    SELECT session_id, ts, event_type, product_id FROM events
    WHERE event_type IN ('view', 'cart_add', 'checkout', 'purchase')
),
v AS (
    SELECT session_id, min(ts) AS t1, arg_min(product_id, ts) AS product_id
    FROM ev WHERE event_type = 'view' GROUP BY session_id
),
c AS (
    SELECT v.session_id, min(ev.ts) AS t2 FROM v JOIN ev ON ev.session_id = v.session_id
    WHERE ev.event_type = 'cart_add' AND ev.ts >= v.t1 GROUP BY v.session_id
),
k AS (
    SELECT c.session_id, min(ev.ts) AS t3 FROM c JOIN ev ON ev.session_id = c.session_id
    WHERE ev.event_type = 'checkout' AND ev.ts >= c.t2 GROUP BY c.session_id
),
p AS (
    SELECT k.session_id, min(ev.ts) AS t4 FROM k JOIN ev ON ev.session_id = k.session_id
    WHERE ev.event_type = 'purchase' AND ev.ts >= k.t3 GROUP BY k.session_id
)
SELECT coalesce(pr.category, '(none)') AS category, count(*) AS viewed, count(c.t2) AS carted,
       count(k.t3) AS checked_out, count(p.t4) AS purchased
FROM v LEFT JOIN products pr ON pr.product_id = v.product_id
LEFT JOIN c ON c.session_id = v.session_id
LEFT JOIN k ON k.session_id = v.session_id
LEFT JOIN p ON p.session_id = v.session_id
GROUP BY 1 ORDER BY 2 DESC
"""

STEPS = ["view", "cart_add", "checkout", "purchase"]


def simulated(n_events: int) -> tuple[pa.Table, pa.Table, str]:
    """Events and catalog from `cartlift.simulate` (about 23.5 events per customer over 30 days)."""
    from cartlift.simulate import simulate

    sim = simulate(n_users=max(1000, int(n_events / 23.5)), n_days=30, random_state=0)
    return sim.events, sim.products, "cartlift.simulate"


def synthetic(n_events: int) -> tuple[pa.Table, pa.Table, str]:
    """Plain NumPy sessions (view*, then cart_add/checkout/purchase with falling rates) when there is no simulator."""
    rng = np.random.default_rng(0)
    n_sessions = n_events // 5
    views = rng.geometric(0.25, n_sessions)
    carted = rng.random(n_sessions) < 0.1
    checked = carted & (rng.random(n_sessions) < 0.4)
    bought = checked & (rng.random(n_sessions) < 0.8)
    per = views + carted + checked + bought
    session = np.repeat(np.arange(n_sessions), per)
    pos = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    kind = np.where(pos < np.repeat(views, per), 0, pos - np.repeat(views, per) + 1)
    start = rng.integers(0, 30 * 86_400_000, n_sessions)
    ts = np.repeat(start, per) + pos * 40_000
    types = np.array(["view", "cart_add", "checkout", "purchase"])
    products = rng.integers(0, 2000, session.size)
    events = pa.table(
        {
            "event_id": pa.array(np.char.add("e", np.arange(session.size).astype(str))),
            "ts": pa.array(ts + 1_767_225_600_000, pa.timestamp("ms", tz="UTC")),
            "user_id": pa.array(np.char.add("u", (session // 3).astype(str))),
            "session_id": pa.array(np.char.add("s", session.astype(str))),
            "event_type": pa.array(types[kind]),
            "product_id": pa.array(np.char.add("p", products.astype(str))),
            "quantity": pa.array(np.ones(session.size, np.int32)),
            "price": pa.array(rng.uniform(5, 300, session.size)),
        }
    )
    catalog = pa.table(
        {
            "product_id": [f"p{i}" for i in range(2000)],
            "category": [f"category {i % 12}" for i in range(2000)],
        }
    )
    return events, catalog, "NumPy (no simulator)"


def load(store: EventStore, events: pa.Table, products: pa.Table) -> None:
    """Straight into the store's tables (the benchmark is the funnel, not the validated ingest)."""
    con = store.con
    con.register("_events", events)
    cols = set(events.column_names)

    def col(name: str, cast: str = "VARCHAR") -> str:
        return f"CAST({name} AS {cast})" if name in cols else "NULL"

    con.execute(
        f"""INSERT INTO events SELECT CAST(event_id AS VARCHAR), CAST(ts AS TIMESTAMP), CAST(user_id AS VARCHAR),
            CAST(session_id AS VARCHAR), CAST(event_type AS VARCHAR), {col("product_id")}, {col("quantity", "INTEGER")},
            {col("price", "DOUBLE")}, {col("order_id")}, {col("channel")}, {col("device")}, {col("properties")}, 'bench'
            FROM _events"""
    )
    con.unregister("_events")
    con.register("_products", products)
    con.execute("INSERT INTO products (product_id, category) SELECT product_id, category FROM _products")
    con.unregister("_products")
    con.execute("CHECKPOINT")


def timed(fn: object, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=float, default=10e6, help="about how many events to simulate")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (the median is reported)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    try:
        events, products, source = simulated(int(args.events))
    except ImportError:
        events, products, source = synthetic(int(args.events))
    print(f"generated {events.num_rows:,} events with {source} in {time.perf_counter() - t0:.1f} s")
    with (
        tempfile.TemporaryDirectory(prefix="cartlift-bench-") as tmp,
        EventStore(Path(tmp) / "bench.duckdb") as store,
    ):
        load(store, events, products)
        del events
        spec = Funnel(STEPS, unit="session", breakdown="category", breakdown_limit=50)
        hand = lambda: store.con.execute(HAND_WRITTEN).fetchall()  # noqa: E731
        mine = lambda: spec.compute(store)  # noqa: E731
        hand(), mine()  # warm the file cache and DuckDB's catalog for both
        t_hand, rows = timed(hand, args.runs)
        t_mine, result = timed(mine, args.runs)
        sessions = store.count("events")
    expected = [sum(r[i] for r in rows) for i in range(1, 5)]  # type: ignore[union-attr]
    got = [s.count for s in result.steps]  # type: ignore[union-attr]
    by_hand = {r[0]: list(r[1:]) for r in rows}  # type: ignore[union-attr]
    by_mine = {g.value: list(g.counts) for g in result.breakdown.groups}  # type: ignore[union-attr]
    ratio = t_mine / t_hand
    print(f"events {sessions:,}; steps {', '.join(STEPS)}; breakdown by category ({len(by_hand)} values)")
    print(f"{'':<24}{'seconds':>9}")
    print(f"{'hand-written DuckDB SQL':<24}{t_hand:>9.3f}")
    print(f"{'cartlift Funnel':<24}{t_mine:>9.3f}")
    print(f"ratio cartlift / hand-written: {ratio:.2f} (goal <= 1.5: {'met' if ratio <= 1.5 else 'MISSED'})")
    print(f"step counts: cartlift {got}, hand-written {expected}")
    if got != expected or by_mine != by_hand:
        print("the two disagree on the counts", file=sys.stderr)
        return 1
    print("counts agree at every step and in every category")
    return 0


if __name__ == "__main__":
    sys.exit(main())
