"""The batch jobs on local Spark against the embedded DuckDB path: a 10M-event funnel and FP-growth.

One run on the same Parquet event table (the layout ``EventStore.export("events", path)``
writes), synthetic but shaped like a store: ~5 events per session, 3 sessions per user, a
Zipf-popular catalogue of 20k products, and 8 % of sessions that buy (their purchase events
share an order id; a few product bundles make pairs frequent).

* funnel: the default ordered session funnel (view -> cart_add -> checkout -> purchase) with
  ``funnel_on_parquet(..., engine="duckdb")`` and ``engine="spark"``; the counts must agree.
* breakdown funnel: a strict user funnel with a 1-hour window broken down by price band (the
  per-unit query, then the groups with their chi-square tests); the whole results must agree.
* FP-growth: the orders' baskets, itemsets with support >= 0.001: DuckDB SQL to build the baskets
  + cartlift's ``frequent_itemsets``, against ``baskets_from_events`` + MLlib ``FPGrowth``
  (``spark_frequent_itemsets``); the itemsets must agree.

Spark's session start-up is reported apart (paid once per job, not per query). Ratios are
Spark / DuckDB: above 1, Spark is slower on this machine.

    .venv/bin/python benchmarks/spark.py                 # 10M events
    .venv/bin/python benchmarks/spark.py --events 1e6    # a quicker look
    .venv/bin/python benchmarks/spark.py --spark-master spark://host:7077
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cartlift.analytics import Funnel
from cartlift.recommend import FrequentItemsets, basket_matrix, frequent_itemsets
from cartlift.spark import (
    HAS_SPARK,
    baskets_from_events,
    funnel_on_parquet,
    read_events,
    spark_frequent_itemsets,
    spark_funnel,
    spark_session,
)

MIN_SUPPORT = 0.001


def make_events(n: int, path: Path, seed: int = 0) -> None:
    """``n`` events in the events layout, written to ``path`` (Parquet)."""
    rng = np.random.default_rng(seed)
    n_sessions = max(1, n // 5)
    session = np.sort(rng.integers(0, n_sessions, n))
    start = np.datetime64("2024-01-01T00:00:00", "us") + (
        rng.integers(0, 30 * 86400, n_sessions) * 1_000_000
    ).astype("timedelta64[us]")
    pos = np.arange(n) - np.searchsorted(session, session)  # index of the event in its session
    ts = start[session] + (pos * 40_000_000 + rng.integers(0, 30_000_000, n)).astype("timedelta64[us]")
    buyer = rng.random(n_sessions) < 0.08
    u = rng.random(n)
    types = np.array(["view", "cart_add", "checkout", "purchase"])
    shopper = buyer[session]
    kind = np.where(
        shopper,
        np.searchsorted([0.5, 0.7, 0.8], u, side="right"),
        np.searchsorted([0.88, 0.97, 0.995], u, side="right"),
    )
    product = np.minimum(rng.zipf(1.3, n), 20_000) - 1
    bought = kind == 3
    # purchases come from a 2k-item range, with bundles: product 2k+1 follows 2k half of the time
    product[bought] = np.minimum(rng.zipf(1.5, bought.sum()), 2_000) - 1
    pair = bought & (product % 2 == 0) & (rng.random(n) < 0.5)
    product[np.flatnonzero(pair)[:-1] + 1] = np.where(
        bought[np.flatnonzero(pair)[:-1] + 1],
        product[np.flatnonzero(pair)[:-1]] + 1,
        product[np.flatnonzero(pair)[:-1] + 1],
    )
    table = pa.table(
        {
            "event_id": pa.array(np.arange(n).astype(str)),
            "ts": pa.array(ts, pa.timestamp("us")),
            "user_id": pa.array((session // 3).astype(str)),
            "session_id": pa.array(session.astype(str)),
            "event_type": pa.array(types[kind]),
            "product_id": pa.array(product.astype(str)),
            "quantity": pa.array(np.ones(n, np.int32)),
            "price": pa.array(np.round(rng.gamma(2.0, 20.0, n), 2)),
            "order_id": pa.array(session.astype(str), mask=~bought),
        }
    )
    pq.write_table(table, path, row_group_size=1_000_000)


def duckdb_itemsets(path: Path) -> FrequentItemsets:
    sql = (
        "SELECT list(DISTINCT product_id) FROM read_parquet(?) WHERE event_type = 'purchase' "
        "GROUP BY coalesce(order_id, session_id)"
    )
    baskets = [r[0] for r in duckdb.execute(sql, [str(path)]).fetchall()]
    m, ids = basket_matrix(baskets)
    return frequent_itemsets(m, MIN_SUPPORT, item_ids=ids)


def _groups(result: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(g.value, g.counts) for g in result.breakdown.groups]


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=float, default=10e6, help="events to generate (default 10M)")
    ap.add_argument("--spark-master", default="local[*]", help="Spark master URL (default local[*])")
    ap.add_argument("--driver-memory", default="4g")
    args = ap.parse_args(argv)
    if not HAS_SPARK:
        print("pyspark is not installed: pip install 'cartlift[spark]'", file=sys.stderr)
        return 2
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    n = int(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        _, t_gen = timed(make_events, n, path)
        print(f"{n:,} events written to Parquet in {t_gen:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")

        spark, t_start = timed(
            spark_session,
            args.spark_master,
            app_name="cartlift-benchmark",
            conf={
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": "8",
                "spark.driver.memory": args.driver_memory,
            },
        )
        spark.sparkContext.setLogLevel("ERROR")
        print(f"Spark session ({args.spark_master}) started in {t_start:.1f} s (not counted below)")

        duck, t_duck = timed(funnel_on_parquet, path, Funnel(), engine="duckdb")
        sparked, t_spark = timed(spark_funnel, read_events(spark, path), Funnel())
        same = [s.count for s in duck.steps] == [s.count for s in sparked.steps]
        print(f"funnel counts {[s.count for s in duck.steps]} (spark {'same' if same else 'DIFFERENT'})")
        print(
            f"funnel     duckdb {t_duck:7.2f} s   spark {t_spark:7.2f} s   spark/duckdb {t_spark / t_duck:5.1f}"
        )

        spec = Funnel(order="strict", unit="user", window="1h", breakdown="price_band")
        duck_bd, t_duck_bd = timed(funnel_on_parquet, path, spec, engine="duckdb")
        spark_bd, t_spark_bd = timed(spark_funnel, read_events(spark, path), spec)
        same_bd = _groups(duck_bd) == _groups(spark_bd)
        print(f"breakdown  {len(_groups(duck_bd))} price bands (spark {'same' if same_bd else 'DIFFERENT'})")
        print(
            f"breakdown  duckdb {t_duck_bd:7.2f} s   spark {t_spark_bd:7.2f} s   "
            f"spark/duckdb {t_spark_bd / t_duck_bd:5.1f}"
        )

        found, t_fd = timed(duckdb_itemsets, path)
        baskets = baskets_from_events(read_events(spark, path))
        got, t_fs = timed(spark_frequent_itemsets, baskets, MIN_SUPPORT)
        same_sets = dict(zip(found.itemsets, found.counts.tolist(), strict=True)) == dict(
            zip(got.itemsets, got.counts.tolist(), strict=True)
        )
        print(
            f"FP-growth  {found.n_baskets:,} baskets, {len(found):,} itemsets "
            f"(spark {'same' if same_sets else 'DIFFERENT'})"
        )
        print(f"FP-growth  duckdb {t_fd:7.2f} s   spark {t_fs:7.2f} s   spark/duckdb {t_fs / t_fd:5.1f}")
        spark.stop()
        return 0 if same and same_bd and same_sets else 1


if __name__ == "__main__":
    sys.exit(main())
