"""The funnel on Spark SQL, on the same step, order-key and window semantics as the DuckDB funnel.

Every event gets the order key ``unix_micros(ts) * 8 + rank(event_type)`` of
`cartlift.analytics._funnel_sql`; a step is reached at a key strictly greater than the previous
step's. *ordered* funnels are supported: without a window each unit has one candidate entry
(its first step-1 event) and every later step is the first matching event after the previous
one; with a window the candidates are the first entry and, for every step-2 event, the last
step-1 event before it (the same candidates as the DuckDB ASOF plan), and each unit keeps its
attempt with the most steps (the earliest entry among ties). ``strict``/``unordered`` orders,
exclusions, breakdowns and catalog filters stay on the DuckDB engine for now.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cartlift._params import validate_params
from cartlift.analytics import Funnel
from cartlift.analytics._funnel import DEFAULT_STEPS, funnel_steps
from cartlift.analytics._funnel_result import FunnelResult, TimeToConvert
from cartlift.analytics._steps import Step, parse_bound, parse_step
from cartlift.errors import DataError, InvalidParameterError
from cartlift.events import EVENT_TYPES

__all__ = ["funnel_on_parquet", "spark_funnel"]

_RANK = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(EVENT_TYPES))
_US = "unix_micros(CAST(e.ts AS TIMESTAMP))"
ORDER_KEY = f"({_US} * 8 + CASE e.event_type {_RANK} ELSE 7 END)"


def _ts(value: datetime) -> str:
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"


def _unsupported(spec: Funnel, steps: list[Step]) -> str | None:
    if spec.order != "ordered":
        return f"order={spec.order!r}"
    if spec.exclusions:
        return "exclusions"
    if spec.breakdown is not None:
        return "breakdowns"
    if any(s.needs_products for s in steps):
        return "catalog filters (category, brand, title) in steps"
    return None


def spark_funnel(events: Any, spec: Funnel | None = None) -> FunnelResult:
    """Run ``spec`` on a Spark DataFrame of events (the ``events`` Parquet layout).

    Parameters
    ----------
    events : pyspark.sql.DataFrame
        Columns ``ts, session_id, user_id, event_type`` at least (plus any filtered column).
    spec : Funnel, optional
        Default ``Funnel()``: the ordered session funnel view -> cart_add -> checkout -> purchase.

    Returns
    -------
    FunnelResult
        Steps with counts, conversions, Wilson intervals and time gaps, and the time to convert
        (without its histogram); the trend and breakdown are left empty on this engine.
    """
    spec = spec or Funnel()
    validate_params(spec)
    spark = events.sparkSession
    seen = {r[0] for r in events.select("event_type").distinct().collect()}
    skipped: list[str] = []
    if spec.steps is not None:
        steps = [s if isinstance(s, Step) else parse_step(s) for s in spec.steps]
        if not steps:
            raise InvalidParameterError("A funnel needs at least one step. Got an empty list.")
    else:
        steps = [Step(t) for t in DEFAULT_STEPS if t in seen]
        skipped = [t for t in DEFAULT_STEPS if t not in seen]
        if not steps:
            raise DataError(
                "The events have no view, cart_add, checkout or purchase events: check the Parquet path."
            )
    what = _unsupported(spec, steps)
    if what is not None:
        raise InvalidParameterError(
            f"The Spark engine does not compute funnels with {what} yet: use --engine duckdb for those."
        )
    window = spec._window()
    start = parse_bound(spec.start, end=False, what="start of the entry range")
    end = parse_bound(spec.end, end=True, what="end of the entry range")
    if start is not None and end is not None and end <= start:
        raise InvalidParameterError(f"The entry range is empty: end {end} is not after start {start}.")

    view = f"cl_events_{uuid.uuid4().hex[:12]}"
    events.createOrReplaceTempView(view)
    try:
        units = spark.sql(_units_sql(view, steps, spec.unit, window, start, end)).cache()
        try:
            return _summarise(spec, units, steps, skipped, window, start, end)
        finally:
            units.unpersist()
    finally:
        spark.catalog.dropTempView(view)


def _units_sql(
    view: str,
    steps: list[Step],
    unit: str,
    window: Any,
    start: datetime | None,
    end: datetime | None,
) -> str:
    """One row per unit that entered: ``unit, level, t1..tK`` (microseconds since the epoch)."""
    n = len(steps)
    unit_col = "e.session_id" if unit == "session" else "e.user_id"
    scope = ["TRUE"]
    if start is not None:
        scope.append(f"CAST(e.ts AS TIMESTAMP) >= {_ts(start)}")
    if end is not None and (window is not None or unit == "session"):
        reach = window if window is not None else timedelta(days=1)
        scope.append(f"CAST(e.ts AS TIMESTAMP) < {_ts(end + reach)}")
    entry = ["TRUE"]
    if start is not None:
        entry.append(f"CAST(e.ts AS TIMESTAMP) >= {_ts(start)}")
    if end is not None:
        entry.append(f"CAST(e.ts AS TIMESTAMP) < {_ts(end)}")
    where = " AND ".join(scope)
    ctes = []
    for j, step in enumerate(steps, start=1):
        cond = f"{step.sql()} AND {where}" + (f" AND {' AND '.join(entry)}" if j == 1 else "")
        ctes.append(f"s{j} AS (SELECT {unit_col} AS unit, {ORDER_KEY} AS k FROM {view} e WHERE {cond})")
    w_us = None if window is None else round(window.total_seconds() * 1_000_000)
    if w_us is None or n == 1:
        ctes.append("c1 AS (SELECT unit, min(k) AS k1 FROM s1 GROUP BY unit)")
        prev = "c1"
        for j in range(2, n + 1):
            ctes.append(
                f"n{j} AS (SELECT c.unit, min(s.k) AS k{j} FROM {prev} c "
                f"JOIN s{j} s ON s.unit = c.unit AND s.k > c.k{j - 1} GROUP BY c.unit)"
            )
            prev = f"n{j}"
        joins = "".join(f" LEFT JOIN n{j} USING (unit)" for j in range(2, n + 1))
        ctes.append(f"picked AS (SELECT * FROM c1{joins})")
    else:
        # candidates: the first entry, and the last step-1 event before each step-2 event
        # (at equal keys the step-2 row sorts first, so it never sees a step-1 event of its own key)
        ctes.append("tagged AS (SELECT unit, k, 1 AS src FROM s1 UNION ALL SELECT unit, k, 0 AS src FROM s2)")
        ctes.append(
            "lastbefore AS (SELECT unit, src, max(CASE WHEN src = 1 THEN k END) OVER "
            "(PARTITION BY unit ORDER BY k, src ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS k1 "
            "FROM tagged)"
        )
        ctes.append(
            "cand AS (SELECT unit, min(k) AS k1 FROM s1 GROUP BY unit "
            "UNION SELECT unit, k1 FROM lastbefore WHERE src = 0 AND k1 IS NOT NULL)"
        )
        ctes.append("c1 AS (SELECT unit, k1 FROM cand)")
        keep = ["unit", "k1"]
        for j in range(2, n + 1):
            cols = ", ".join(f"c.{c}" for c in keep)
            ctes.append(
                f"r{j} AS (SELECT {cols}, min(s.k) AS raw{j} FROM c{j - 1} c "
                f"LEFT JOIN s{j} s ON s.unit = c.unit AND s.k > c.k{j - 1} GROUP BY {cols})"
            )
            ctes.append(
                f"c{j} AS (SELECT {', '.join(keep)}, CASE WHEN div(raw{j}, 8) <= div(k1, 8) + {w_us} "
                f"THEN raw{j} END AS k{j} FROM r{j})"
            )
            keep.append(f"k{j}")
        ctes.append(f"picked AS (SELECT * FROM c{n})")
    level = " + ".join(["1"] + [f"CAST(k{j} IS NOT NULL AS INT)" for j in range(2, n + 1)])
    times = ", ".join(f"div(k{j}, 8) AS t{j}" for j in range(1, n + 1))
    ctes.append(f"lev AS (SELECT unit, {level} AS level, k1, {times} FROM picked)")
    ctes.append(
        "best AS (SELECT *, row_number() OVER (PARTITION BY unit ORDER BY level DESC, k1) AS rn FROM lev)"
    )
    cols = ", ".join(f"t{j}" for j in range(1, n + 1))
    return "WITH " + ",\n".join(ctes) + f"\nSELECT unit, level, {cols} FROM best WHERE rn = 1"


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def _summarise(
    spec: Funnel,
    units: Any,
    steps: list[Step],
    skipped: list[str],
    window: Any,
    start: datetime | None,
    end: datetime | None,
) -> FunnelResult:
    from pyspark.sql import functions as F

    n = len(steps)
    aggs = [F.count(F.when(F.col("level") >= j, 1)).alias(f"c{j}") for j in range(1, n + 1)]
    for j in range(2, n + 1):
        gap = F.when(F.col("level") >= j, (F.col(f"t{j}") - F.col(f"t{j - 1}")) / 1e6)
        aggs.append(F.percentile(gap, F.array(F.lit(0.5), F.lit(0.9))).alias(f"q{j}"))
    total = F.when(F.col("level") == n, (F.col(f"t{n}") - F.col("t1")) / 1e6)
    aggs += [
        F.count(total).alias("converted"),
        F.percentile(total, F.array(F.lit(0.5), F.lit(0.9))).alias("qt"),
        F.avg(total).alias("mean"),
    ]
    row = units.agg(*aggs).collect()[0]
    counts = [int(row[f"c{j}"]) for j in range(1, n + 1)]
    gaps = [None, *(row[f"q{j}"] for j in range(2, n + 1))]
    out_steps = funnel_steps([s.name for s in steps], counts, gaps, spec.confidence)
    qt = row["qt"] if n > 1 else None
    notes = [f"{t} is not a step: the events have no {t} events" for t in skipped]
    notes.append("computed on Spark: the trend and the time-to-convert histogram are not computed there yet")
    return FunnelResult(
        steps=tuple(out_steps),
        unit=spec.unit,
        order=spec.order,
        window_seconds=None if window is None else window.total_seconds(),
        start=start,
        end=end,
        entered=counts[0],
        excluded=0,
        time_to_convert=TimeToConvert(
            int(row["converted"]) if n > 1 else counts[0],
            None if not qt else _f(qt[0]),
            None if not qt else _f(qt[1]),
            _f(row["mean"]) if n > 1 else None,
        ),
        trend_period=spec.trend,
        skipped_steps=tuple(skipped),
        notes=tuple(notes),
    )


def funnel_on_parquet(
    path: str | Path,
    spec: Funnel | None = None,
    *,
    engine: str = "duckdb",
    master: str | None = None,
) -> FunnelResult:
    """Run a funnel on an exported event table (a Parquet file, directory or glob) with either engine.

    ``engine="duckdb"`` reads the Parquet in an in-memory store (every funnel option works);
    ``engine="spark"`` runs `spark_funnel` on a session from `spark_session` (``master``).
    """
    from cartlift.spark._engine import check_engine

    spec = spec or Funnel()
    name = check_engine(engine)
    target = Path(path)
    if not any(c in str(path) for c in "*?[") and not target.exists():
        raise DataError(
            f"No event table at {str(path)!r}: export one with EventStore.export('events', path) "
            "or give a Parquet file, directory or glob."
        )
    if name == "spark":
        from cartlift.spark._ingest import read_events
        from cartlift.spark._session import spark_session

        return spark_funnel(read_events(spark_session(master), path), spec)
    from cartlift.events import EventStore

    source = str(target / "**" / "*.parquet") if target.is_dir() else str(path)
    with EventStore(":memory:") as store:
        store.con.execute("DROP TABLE IF EXISTS events")
        lit = source.replace("'", "''")
        store.con.execute(
            f"CREATE VIEW events AS SELECT * FROM read_parquet('{lit}', hive_partitioning = false, union_by_name = true)"
        )
        return spec.compute(store)
