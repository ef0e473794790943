"""From a funnel's per-unit table to its figures: one set of aggregates for every engine.

The per-unit query (who reached which step when) is engine-specific: `_funnel_sql` for DuckDB,
`cartlift.spark._funnel_sql` for Spark. Both give a table of one row per unit that entered,
``unit, level, excluded, t1..tK`` plus the columns carried from the entry event for the
breakdown. Everything after it is the SQL text of this module, up to the few spellings a
`SqlDialect` names, and the same Python statistics on the aggregates, so the engines cannot
drift apart in what they report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from cartlift.analytics._funnel_result import (
    Breakdown,
    BreakdownGroup,
    FunnelStep,
    HistogramBin,
    TimeToConvert,
    TrendPoint,
)
from cartlift.analytics._stats import chi_square, holm, wilson_interval
from cartlift.errors import InvalidParameterError

__all__ = [
    "DERIVED_BREAKDOWNS",
    "BreakdownSource",
    "Rows",
    "SqlDialect",
    "breakdown",
    "breakdown_source",
    "carry_columns",
    "funnel_notes",
    "funnel_steps",
    "step_summary",
    "time_to_convert",
    "trend_points",
]

Rows = Callable[[str], Sequence[Sequence[Any]]]
"""Runs one query on the engine and returns its rows (each indexable like a tuple)."""

DERIVED_BREAKDOWNS = ("price_band", "new_vs_returning", "hour", "weekday")
"""Breakdowns computed from the entry event rather than read from a column."""

_NOT_BREAKDOWNS = ("event_id", "ts", "load_id", "event_type", "quantity", "price")

# human-sized bins for "how long did it take": seconds
_BINS = (
    (0, "< 1 min"),
    (60, "1-5 min"),
    (300, "5-15 min"),
    (900, "15-30 min"),
    (1800, "30-60 min"),
    (3600, "1-3 h"),
    (3 * 3600, "3-6 h"),
    (6 * 3600, "6-12 h"),
    (12 * 3600, "12-24 h"),
    (86400, "1-3 days"),
    (3 * 86400, "3-7 days"),
    (7 * 86400, "7-14 days"),
    (14 * 86400, "14-30 days"),
    (30 * 86400, "30+ days"),
)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class SqlDialect:
    """The spellings of the summary queries that differ between engines; these are DuckDB's.

    The step times ``t1..tK`` of the per-unit table are whatever the engine's unit query gives
    (TIMESTAMP on DuckDB); each method turns such a column into what the shared SQL needs.
    """

    text = "VARCHAR"
    """The string type of ``CAST``."""

    def ident(self, name: str) -> str:
        """A quoted identifier."""
        return '"' + name.replace('"', '""') + '"'

    def seconds(self, col: str) -> str:
        """A step time as seconds since the epoch (DOUBLE)."""
        return f"epoch({col})"

    def quantiles(self, expr: str, levels: Sequence[float]) -> str:
        """The linearly interpolated quantiles of ``expr`` at ``levels``, as one list."""
        return f"quantile_cont({expr}, [{', '.join(str(q) for q in levels)}])"

    def period(self, trend: str, col: str) -> str:
        """The start of the hour/day/week (ISO, Monday)/month of a step time."""
        return f"date_trunc('{trend}', {col})"

    def hour_label(self, col: str) -> str:
        """``"00h"`` .. ``"23h"`` (UTC) of a step time."""
        return f"lpad(CAST(hour({col}) AS VARCHAR), 2, '0') || 'h'"

    def weekday_label(self, col: str) -> str:
        """``"1 Monday"`` .. ``"7 Sunday"`` of a step time."""
        return f"CAST(isodow({col}) AS VARCHAR) || ' ' || dayname({col})"

    def json_text(self, col: str, key: str) -> str:
        """The value of top-level ``key`` of the JSON text in ``col``, as text (NULL when absent)."""
        return f"json_extract_string({col}, {_lit('$.' + self.ident(key))})"

    def timestamp(self, value: Any) -> datetime | None:
        """A step time (or a period start) as returned by the engine, as a naive UTC datetime."""
        return value


@dataclass(frozen=True)
class BreakdownSource:
    """Where a breakdown's value comes from.

    ``column`` is the breakdown as asked (``"device"``, ``"properties.utm"`` ...); ``kind`` is
    one of `DERIVED_BREAKDOWNS`, ``"property"`` (``name`` is the JSON key), ``"event"`` (an
    events column) or ``"product"`` (a products column, read through the entry event's product).
    """

    column: str
    kind: str
    name: str


def breakdown_source(
    breakdown: str | None, columns: Callable[[str], Sequence[str]]
) -> BreakdownSource | None:
    """Resolve a breakdown name against the columns of ``events`` and ``products`` (``columns(table)``).

    An events column wins over a products column of the same name; ``price`` and the other
    columns of `_NOT_BREAKDOWNS` are never read from the events.
    """
    bd = breakdown
    if bd is None:
        return None
    if bd in DERIVED_BREAKDOWNS:
        return BreakdownSource(bd, bd, bd)
    if bd.startswith("properties."):
        key = bd.removeprefix("properties.")
        if not key:
            raise InvalidParameterError("Name the key of a properties breakdown: properties.<key>.")
        return BreakdownSource(bd, "property", key)
    event_cols = list(columns("events"))
    if bd in event_cols and bd not in _NOT_BREAKDOWNS:
        return BreakdownSource(bd, "event", bd)
    product_cols = list(columns("products"))
    if bd in product_cols and bd != "product_id":
        return BreakdownSource(bd, "product", bd)
    allowed = [c for c in event_cols if c not in _NOT_BREAKDOWNS] + [
        c for c in product_cols if c != "product_id"
    ]
    hint = (
        ""
        if product_cols
        else " Catalog columns (category, brand ...) need the products table: put products.parquet "
        "beside the events or pass it (--products)."
    )
    raise InvalidParameterError(
        f"Cannot break a funnel down by {bd!r}. Use an events or products column "
        f"({', '.join(allowed)}), properties.<key>, or one of {', '.join(DERIVED_BREAKDOWNS)}.{hint}"
    )


def carry_columns(source: BreakdownSource | None, d: SqlDialect) -> dict[str, str]:
    """Columns the per-unit query reads at the entry event (SQL over events ``e``) for ``source``."""
    if source is None or source.kind in ("hour", "weekday"):
        return {}
    if source.kind == "price_band":
        return {"bd_price": "e.price"}
    if source.kind == "new_vs_returning":
        return {"bd_user": "e.user_id", "bd_session": "e.session_id"}
    if source.kind == "property":
        return {"bd_value": d.json_text("e.properties", source.name)}
    if source.kind == "event":
        return {"bd_value": f"CAST(e.{d.ident(source.name)} AS {d.text})"}
    # a catalog column: the product is carried and the catalog joined once per unit
    return {"bd_pid": "e.product_id"}


def _level_counts(n: int) -> str:
    return ", ".join(f"count(*) FILTER (WHERE level >= {j})" for j in range(1, n + 1))


def _gap(d: SqlDialect, a: int, b: int) -> str:
    """Seconds from step ``a`` to step ``b``, as the difference of the two epochs (DuckDB's rounding)."""
    return f"{d.seconds(f't{b}')} - {d.seconds(f't{a}')}"


def step_summary(
    rows: Rows, d: SqlDialect, table: str, names: Sequence[str], confidence: float
) -> tuple[int, list[int], list[FunnelStep]]:
    """Units dropped by the exclusions, units reaching each step, and the steps with their statistics."""
    n = len(names)
    gaps = "".join(
        f", {d.quantiles(_gap(d, j - 1, j), (0.5, 0.9))} FILTER (WHERE level >= {j})" for j in range(2, n + 1)
    )
    # excluded units are out of every figure
    row = rows(
        f"SELECT (SELECT count(*) FROM {table} WHERE excluded), {_level_counts(n)}{gaps} "
        f"FROM {table} WHERE NOT excluded"
    )[0]
    counts = [int(c) for c in row[1 : n + 1]]
    return int(row[0]), counts, funnel_steps(names, counts, [None, *row[n + 1 :]], confidence)


def time_to_convert(rows: Rows, d: SqlDialect, table: str, n: int) -> TimeToConvert:
    """Time from the first to the last step of the units that reached the last step, with a histogram."""
    if n == 1:
        converted = int(rows(f"SELECT count(*) FROM {table} WHERE NOT excluded")[0][0])
        return TimeToConvert(converted, None, None, None)
    edges = [b[0] for b in _BINS]
    bins = ", ".join(
        f"count(*) FILTER (WHERE s >= {lo}" + (f" AND s < {edges[i + 1]})" if i + 1 < len(edges) else ")")
        for i, lo in enumerate(edges)
    )
    row = rows(
        f"SELECT count(*), {d.quantiles('s', (0.5, 0.9))}, avg(s), {bins} "
        f"FROM (SELECT {_gap(d, 1, n)} AS s FROM {table} "
        f"WHERE NOT excluded AND level = {n}) AS converted"
    )[0]
    hist = [
        HistogramBin(label, float(lo), float(edges[i + 1]) if i + 1 < len(edges) else None, int(c))
        for i, ((lo, label), c) in enumerate(zip(_BINS, row[3:], strict=True))
    ]
    # trailing empty bins say nothing; keep the histogram as long as the data
    while hist and hist[-1].count == 0:
        hist.pop()
    q = row[1]
    return TimeToConvert(
        converted=int(row[0]),
        median_seconds=None if q is None else _f(q[0]),
        p90_seconds=None if q is None else _f(q[1]),
        mean_seconds=_f(row[2]),
        histogram=tuple(hist),
    )


def trend_points(
    rows: Rows,
    d: SqlDialect,
    table: str,
    n: int,
    *,
    period: str,
    window: timedelta | None,
    last_ts: datetime | None,
    confidence: float,
) -> tuple[TrendPoint, ...]:
    """Units entering per period (of their entry time) and how many of them reached the last step."""
    found = rows(
        f"SELECT {d.period(period, 't1')} AS period, count(*), count(*) FILTER (WHERE level = {n}), "
        f"max(t1) FROM {table} WHERE NOT excluded GROUP BY 1 ORDER BY 1"
    )
    points = []
    for start, entered, converted, latest in found:
        lo, hi = wilson_interval(int(converted), int(entered), confidence)
        last_entry = d.timestamp(latest)
        # the last entrant of the period needs its whole window before the rate is final
        complete = (
            last_ts is not None
            and last_entry is not None
            and last_entry + (window or timedelta(0)) <= last_ts
        )
        points.append(
            TrendPoint(
                period=d.timestamp(start),  # type: ignore[arg-type]
                entered=int(entered),
                converted=int(converted),
                conversion=converted / entered if entered else None,
                ci_low=lo,
                ci_high=hi,
                complete=bool(complete),
            )
        )
    return tuple(points)


def breakdown(
    rows: Rows,
    d: SqlDialect,
    table: str,
    n: int,
    source: BreakdownSource,
    *,
    limit: int,
    confidence: float,
    events: str = "events",
    products: str = "products",
) -> Breakdown:
    """The funnel split by the entry event's value of ``source``, with chi-square tests and Holm.

    ``events`` and ``products`` name the engine's tables (new_vs_returning reads the events,
    a catalog breakdown the products).
    """
    origin = f"{table} u"
    if source.kind == "hour":
        value = d.hour_label("u.t1")
    elif source.kind == "weekday":
        value = d.weekday_label("u.t1")
    elif source.kind == "price_band":
        value = _price_band(rows, d, table)
    elif source.kind == "new_vs_returning":
        origin += (
            f" LEFT JOIN (SELECT user_id, min(ts) AS first_seen FROM {events} "
            f"WHERE user_id IN (SELECT bd_user FROM {table}) GROUP BY 1) fs ON fs.user_id = u.bd_user"
            f" LEFT JOIN (SELECT session_id, min(ts) AS started FROM {events} "
            f"WHERE session_id IN (SELECT bd_session FROM {table}) GROUP BY 1) ss ON ss.session_id = u.bd_session"
        )
        value = "CASE WHEN fs.first_seen < ss.started THEN 'returning' ELSE 'new' END"
    elif source.kind == "product":
        origin += f" LEFT JOIN {products} p ON p.product_id = u.bd_pid"
        value = f"CAST(p.{d.ident(source.name)} AS {d.text})"
    else:
        value = "u.bd_value"
    found = rows(
        f"""WITH v AS (SELECT coalesce({value}, '(none)') AS value, u.level FROM {origin} WHERE NOT u.excluded),
            top AS (SELECT value FROM v GROUP BY value ORDER BY count(*) DESC, value LIMIT {int(limit)})
            SELECT CASE WHEN value IN (SELECT value FROM top) THEN value ELSE '(other)' END AS g, {_level_counts(n)}
            FROM v GROUP BY g ORDER BY 2 DESC, g"""
    )
    entered = [int(r[1]) for r in found]
    converted = [int(r[n]) for r in found]
    total_e, total_c = sum(entered), sum(converted)
    pvals: list[float | None] = []
    for e, c in zip(entered, converted, strict=True):
        test = chi_square([[c, e - c], [total_c - c, (total_e - e) - (total_c - c)]])
        pvals.append(test.p_value)
    adjusted = holm(pvals)
    groups = []
    for r, e, c, p, pa in zip(found, entered, converted, pvals, adjusted, strict=True):
        lo, hi = wilson_interval(c, e, confidence)
        groups.append(
            BreakdownGroup(
                value=str(r[0]),
                counts=tuple(int(x) for x in r[1 : n + 1]),
                entered=e,
                converted=c,
                conversion=c / e if e else None,
                ci_low=lo,
                ci_high=hi,
                p_value=p,
                p_value_adjusted=pa,
            )
        )
    # no unit entered: an empty 0 x 2 table, which chi_square reports as nothing to compare
    overall = chi_square(
        np.array([[c, e - c] for e, c in zip(entered, converted, strict=True)]).reshape(-1, 2)
    )
    return Breakdown(
        column=source.column,
        groups=tuple(groups),
        chi2=overall.statistic,
        dof=overall.dof,
        p_value=overall.p_value,
        cramers_v=overall.cramers_v,
        note=overall.note,
    )


def _price_band(rows: Rows, d: SqlDialect, table: str) -> str:
    """Quartile bands of the entry price, with edges rounded to 2 significant digits for reading."""
    q = rows(f"SELECT {d.quantiles('bd_price', (0.25, 0.5, 0.75))} FROM {table}")[0][0]
    if not q:
        return "NULL"
    edges = sorted({float(f"{x:.2g}") for x in q})
    cases = []
    lo = 0.0
    for e in edges:
        cases.append(f"WHEN u.bd_price < {e!r} THEN '{_money(lo)}-{_money(e)}'")
        lo = e
    return f"CASE WHEN u.bd_price IS NULL THEN NULL {' '.join(cases)} ELSE '{_money(lo)}+' END"


def _money(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:g}"


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def funnel_notes(skipped: Sequence[str], excluded: int) -> list[str]:
    """What the reader of a funnel should know: default steps left out, units dropped by exclusions."""
    notes = [f"{t} is not a step: the store has no {t} events" for t in skipped]
    if excluded:
        notes.append(f"{excluded:,} units were dropped by the exclusion steps")
    return notes


def funnel_steps(
    names: Sequence[str], counts: Sequence[int], gaps: Sequence[Sequence[float] | None], confidence: float
) -> list[FunnelStep]:
    """Each step's conversions and Wilson intervals from the unit counts reaching it.

    ``gaps[j]`` holds the [median, p90] seconds from step j-1 to step j (None for the first
    step, or when no unit got there). Every engine (DuckDB, Spark) ends its funnel here, so the
    statistics are the same whichever computed the counts.
    """
    steps = []
    for j, name in enumerate(names):
        prev = counts[j - 1] if j else counts[0]
        lo, hi = wilson_interval(counts[j], counts[0], confidence)
        plo, phi = wilson_interval(counts[j], prev, confidence)
        q = gaps[j]
        steps.append(
            FunnelStep(
                name=name,
                count=counts[j],
                conversion_from_previous=counts[j] / prev if prev else None,
                conversion_from_first=counts[j] / counts[0] if counts[0] else None,
                ci_low=lo,
                ci_high=hi,
                ci_previous_low=plo,
                ci_previous_high=phi,
                median_seconds_from_previous=None if not q else _f(q[0]),
                p90_seconds_from_previous=None if not q else _f(q[1]),
            )
        )
    return steps
