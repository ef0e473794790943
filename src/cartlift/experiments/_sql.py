"""Sufficient statistics computed in SQL (DuckDB): one aggregate per experiment, never unit rows in Python.

Three sources share one query shape:

* a table or query of units (:func:`sufficient_stats`),
* a CSV / Parquet / JSON-lines file of units (:func:`stats_from_file`),
* the store: exposed units of an experiment joined with their events after exposure
  (:func:`stats_from_store`, :func:`funnel_from_store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb

from cartlift.errors import DataError, InvalidParameterError
from cartlift.events import EVENT_TYPES
from cartlift.experiments._registry import load_experiment
from cartlift.experiments._statistics import CovariateStats, JointStats, RatioStats, SampleStats
from cartlift.store import EventStore

__all__ = [
    "FUNNEL_STEPS",
    "STORE_METRICS",
    "MetricStats",
    "funnel_from_store",
    "stats_from_file",
    "stats_from_store",
    "sufficient_stats",
]


@dataclass(frozen=True)
class MetricStats:
    """Per-variant sufficient statistics of one metric, as the analysis takes them.

    Attributes
    ----------
    metric : str
        The metric's name.
    stats : dict
        Variant name to :class:`SampleStats`, :class:`RatioStats` or :class:`CovariateStats`.
    binary : bool
        Every unit's value is 0 or 1 (conversion), so proportion tests and the Beta model apply.
    """

    metric: str
    stats: dict[str, SampleStats | JointStats]
    binary: bool


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sufficient_stats(
    con: duckdb.DuckDBPyConnection,
    source: str,
    *,
    variant: str,
    metric: str,
    covariate: str | None = None,
    denominator: str | None = None,
    metric_name: str | None = None,
) -> MetricStats:
    """Aggregate ``n``, sums, sums of squares and the cross term per variant from ``source``.

    Parameters
    ----------
    con : duckdb connection
    source : str
        A table name or a parenthesised query, one row per unit.
    variant, metric : str
        Column names of the variant label and the per-unit metric.
    covariate : str, optional
        Pre-period covariate column for CUPED.
    denominator : str, optional
        Denominator column: the metric becomes the ratio ``sum(metric) / sum(denominator)``.

    Raises
    ------
    DataError
        A column is missing, or a unit has no variant or no metric value (nothing is dropped silently).
    """
    if covariate and denominator:
        raise InvalidParameterError("Give a covariate (CUPED) or a denominator (ratio metric), not both.")
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    for role, col in (
        ("variant", variant),
        ("metric", metric),
        ("covariate", covariate),
        ("denominator", denominator),
    ):
        if col is not None and col not in columns:
            raise DataError(f"The {role} column {col!r} is not in the data. Columns: {', '.join(columns)}.")
    x_col = covariate or denominator
    x = f"CAST({_ident(x_col)} AS DOUBLE)" if x_col else "NULL::DOUBLE"
    sql = f"""
        SELECT CAST(v AS VARCHAR) AS variant, count(*) AS n,
               count(*) FILTER (WHERE y IS NULL OR (has_x AND x IS NULL)) AS missing,
               coalesce(sum(y), 0), coalesce(sum(y * y), 0), coalesce(sum(x), 0), coalesce(sum(x * x), 0),
               coalesce(sum(x * y), 0), coalesce(bool_and(y IN (0, 1)), true)
        FROM (SELECT {_ident(variant)} AS v, CAST({_ident(metric)} AS DOUBLE) AS y, {x} AS x,
                     {"true" if x_col else "false"} AS has_x
              FROM {source})
        GROUP BY v ORDER BY v NULLS FIRST"""
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error as e:
        raise DataError(f"Could not aggregate {metric!r} by {variant!r}: {e}") from e
    if not rows:
        raise DataError("The data have no rows: nothing to analyse.")
    if any(r[0] is None for r in rows):
        n_null = next(r[1] for r in rows if r[0] is None)
        raise DataError(
            f"{n_null} unit(s) have no value in the variant column {variant!r}; fix or filter them."
        )
    missing = sum(int(r[2]) for r in rows)
    if missing:
        cols = metric + (f" or {x_col}" if x_col else "")
        raise DataError(
            f"{missing} unit(s) have no value in {cols}; fill them (0 for a unit that did not convert "
            "or spend) or filter them out before analysing."
        )
    out: dict[str, SampleStats | JointStats] = {}
    for name, n, _, sy, syy, sx, sxx, sxy, _binary in rows:
        if covariate:
            out[name] = CovariateStats(int(n), sy, syy, sx, sxx, sxy)
        elif denominator:
            out[name] = RatioStats(int(n), sy, syy, sx, sxx, sxy)
        else:
            out[name] = SampleStats(int(n), sy, syy)
    binary = not x_col and all(bool(r[8]) for r in rows)
    return MetricStats(metric_name or metric, out, binary)


def _file_source(path: str | Path) -> str:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"No file at {str(p)!r}; give a CSV, Parquet or JSON-lines file of units.")
    quoted = "'" + str(p).replace("'", "''") + "'"
    suffix = "".join(p.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        return f"read_parquet({quoted})"
    if suffix.endswith((".json", ".jsonl", ".ndjson")):
        return f"read_json_auto({quoted})"
    if suffix.endswith((".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")):
        return f"read_csv_auto({quoted})"
    raise DataError(f"Unknown file type {p.suffix!r} for {str(p)!r}: use .csv, .tsv, .parquet or .jsonl.")


def stats_from_file(
    path: str | Path,
    *,
    variant: str,
    metric: str,
    covariate: str | None = None,
    denominator: str | None = None,
) -> MetricStats:
    """:func:`sufficient_stats` over a file of units (one row per unit), read by DuckDB in place."""
    with duckdb.connect() as con:
        return sufficient_stats(
            con,
            _file_source(path),
            variant=variant,
            metric=metric,
            covariate=covariate,
            denominator=denominator,
        )


_PURCHASE_VALUE = "CASE WHEN event_type = 'purchase' THEN coalesce(price, 0) * quantity ELSE 0 END"
_ORDERS = "count(DISTINCT CASE WHEN event_type = 'purchase' THEN coalesce(order_id, session_id) END)"

STORE_METRICS: Final[dict[str, tuple[str, str | None, str]]] = {
    "purchased": (
        "max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END)",
        None,
        "bought at least once (conversion)",
    ),
    "carted": (
        "max(CASE WHEN event_type = 'cart_add' THEN 1 ELSE 0 END)",
        None,
        "added to cart at least once",
    ),
    "checked_out": ("max(CASE WHEN event_type = 'checkout' THEN 1 ELSE 0 END)", None, "reached checkout"),
    "revenue": (f"sum({_PURCHASE_VALUE})", None, "revenue per exposed user"),
    "orders": (_ORDERS, None, "orders per exposed user"),
    "revenue_per_session": (
        f"sum({_PURCHASE_VALUE})",
        "count(DISTINCT session_id)",
        "revenue / sessions (ratio)",
    ),
    "order_value": (f"sum({_PURCHASE_VALUE})", _ORDERS, "average order value: revenue / orders (ratio)"),
}
"""Metrics of the store: name -> (per-unit SQL over the unit's events, denominator or None, meaning)."""

FUNNEL_STEPS: Final = ("view", "cart_add", "checkout", "purchase")


def _units_sql(window_days: float | None) -> tuple[str, str]:
    window = f" AND e.ts < u.t0 + INTERVAL {float(window_days) * 86400:.0f} SECOND" if window_days else ""
    units = """(SELECT unit_id, variant, first_exposed_at AS t0 FROM exposures
               WHERE experiment = $name AND salt = $salt AND status = 'assigned')"""
    return units, window


def stats_from_store(
    store: EventStore,
    experiment: str,
    metric: str = "purchased",
    *,
    covariate: str | None = None,
    window_days: float | None = None,
) -> MetricStats:
    """Per-variant statistics of a store metric over every exposed unit of ``experiment``'s current phase.

    Each exposed user counts, with 0 when they did nothing after exposure (no post-treatment
    selection); only events at or after the user's first exposure count (and before
    ``window_days`` after it, if given).

    Parameters
    ----------
    metric : str
        One of :data:`STORE_METRICS`.
    covariate : {"pre"}, optional
        ``"pre"``: CUPED with the same metric over the user's events before exposure.
    """
    if metric not in STORE_METRICS:
        raise InvalidParameterError(
            f"Unknown store metric {metric!r}. Choose one of: {', '.join(STORE_METRICS)}."
        )
    if covariate not in (None, "pre"):
        raise InvalidParameterError(
            f"covariate must be None or 'pre' on the store. Got {covariate!r} instead."
        )
    numerator, denominator, _ = STORE_METRICS[metric]
    if covariate and denominator:
        raise InvalidParameterError(
            f"CUPED is not available for the ratio metric {metric!r}; drop the covariate."
        )
    exp = load_experiment(store, experiment)
    if "exposures" not in store.tables():
        raise DataError(f"Experiment {experiment!r} has no exposures yet; log some with log_exposures().")
    units, window = _units_sql(window_days)
    den = f", {denominator} AS x" if denominator else ""
    pre = ""
    x_select = "NULL::DOUBLE AS x"
    if denominator:
        x_select = "coalesce(post.x, 0) AS x"
    if covariate:
        pre = f"""LEFT JOIN (SELECT u.unit_id, {numerator} AS x FROM {units} u
                   JOIN events e ON e.user_id = u.unit_id AND e.ts < u.t0 GROUP BY u.unit_id) pre
                  ON pre.unit_id = u.unit_id"""
        x_select = "coalesce(pre.x, 0) AS x"
    source = f"""(SELECT u.variant, coalesce(post.y, 0) AS y, {x_select}
        FROM {units} u
        LEFT JOIN (SELECT u.unit_id, {numerator} AS y{den} FROM {units} u
                   JOIN events e ON e.user_id = u.unit_id AND e.ts >= u.t0{window} GROUP BY u.unit_id) post
          ON post.unit_id = u.unit_id
        {pre})"""
    return sufficient_stats(
        store.con,
        _bind(source, exp.name, str(exp.salt)),
        variant="variant",
        metric="y",
        covariate="x" if covariate else None,
        denominator="x" if denominator else None,
        metric_name=metric,
    )


def _bind(source: str, name: str, salt: str) -> str:
    """``source`` with the experiment's name and salt as quoted SQL literals (quotes doubled)."""

    def literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    return source.replace("$name", literal(name)).replace("$salt", literal(salt))


def funnel_from_store(
    store: EventStore,
    experiment: str,
    *,
    steps: tuple[str, ...] = FUNNEL_STEPS,
    window_days: float | None = None,
) -> dict[str, MetricStats]:
    """For each funnel step, the share of *all* exposed units that reached it after exposure.

    Every step's denominator is the exposed population, not the previous step's survivors:
    conditioning on a step the treatment itself changes would compare different kinds of users
    (post-treatment selection bias; Kohavi et al. 2020, ch. 3).
    """
    unknown = [s for s in steps if s not in EVENT_TYPES]
    if unknown or not steps:
        raise InvalidParameterError(
            f"Funnel steps must be event types ({', '.join(EVENT_TYPES)}). Got {list(steps)!r} instead."
        )
    exp = load_experiment(store, experiment)
    if "exposures" not in store.tables():
        raise DataError(f"Experiment {experiment!r} has no exposures yet; log some with log_exposures().")
    units, window = _units_sql(window_days)
    flags = ", ".join(
        f"max(CASE WHEN e.event_type = '{s}' THEN 1 ELSE 0 END) AS s{i}" for i, s in enumerate(steps)
    )
    columns = ", ".join(f"coalesce(post.s{i}, 0) AS s{i}" for i in range(len(steps)))
    source = f"""(SELECT u.variant, {columns} FROM {units} u
        LEFT JOIN (SELECT u.unit_id, {flags} FROM {units} u
                   JOIN events e ON e.user_id = u.unit_id AND e.ts >= u.t0{window} GROUP BY u.unit_id) post
          ON post.unit_id = u.unit_id)"""
    bound = _bind(source, exp.name, str(exp.salt))
    return {
        step: sufficient_stats(store.con, bound, variant="variant", metric=f"s{i}", metric_name=step)
        for i, step in enumerate(steps)
    }
