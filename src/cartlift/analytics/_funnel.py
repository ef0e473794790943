"""Funnels on the event store: steps, conversion window, step order, exclusions, breakdowns, trends.

The per-unit work (who reached which step when) is one SQL query in DuckDB (`_funnel_sql`);
the result is a small table of one row per unit that entered, from which every figure is an
aggregate, again in SQL. Python only adds the statistics on those counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

from cartlift._params import Interval, Options, validate_params
from cartlift.analytics._funnel_result import (
    Breakdown,
    BreakdownGroup,
    FunnelResult,
    FunnelStep,
    HistogramBin,
    TimeToConvert,
    TrendPoint,
)
from cartlift.analytics._funnel_sql import UnitsQuery, units_sql
from cartlift.analytics._stats import chi_square, holm, wilson_interval
from cartlift.analytics._steps import Exclusion, Step, parse_bound, parse_duration, parse_step
from cartlift.errors import DataError, InvalidParameterError

__all__ = ["DEFAULT_STEPS", "DERIVED_BREAKDOWNS", "Funnel", "funnel", "funnel_steps"]

DEFAULT_STEPS = ("view", "cart_add", "checkout", "purchase")
"""The classic e-commerce funnel; steps whose event type the store has never seen are skipped."""

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


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Funnel:
    """A funnel definition; `compute` runs it on an event store.

    Parameters
    ----------
    steps : sequence of Step or str, optional
        The steps in order. A string is an event type, ``"view|cart_add"`` (either) or
        ``"view:brand=apple"`` (with filters, see `parse_step`). Default ``view, cart_add,
        checkout, purchase`` without the types the store has never seen.
    unit : {"session", "user"}
        Who goes through the funnel. A session's steps must be in that session.
    window : duration, None or "auto"
        Longest time from the first step to the last (``"30m"``, ``"1d"``, a timedelta ...).
        ``"auto"``: 1 day for users, the session itself for sessions.
    order : {"ordered", "strict", "unordered"}
        *ordered*: steps in this order, other events allowed between them; *strict*: each step
        is the unit's very next event; *unordered*: any order (step k counts units that did any
        k of the steps).
    exclusions : sequence of Exclusion
        Units doing an excluding event between two steps are dropped (counted in ``excluded``).
    breakdown : str, optional
        Split by a column of the entry (step-1) event or its product: any ``events`` column
        (channel, device, product_id ...), ``properties.<key>`` (a key of the JSON properties),
        any ``products`` column (category, brand ...), or ``price_band`` (quartiles of the entry
        price), ``new_vs_returning`` (the user had events before the entry session),
        ``hour`` or ``weekday`` (UTC) of entry.
    breakdown_limit : int
        The most frequent values are kept; the rest are grouped as ``(other)``.
    start, end : date, datetime or ISO string, optional
        The entry range: units whose step 1 falls in ``[start, end)`` enter (a plain date as
        ``end`` includes that day). Later steps may fall after ``end``, so units entering near
        the end are not cut short.
    trend : {"hour", "day", "week", "month"}
        Period of the conversion trend (by entry time).
    confidence : float
        Level of the Wilson intervals.

    Examples
    --------
    >>> from cartlift.events import EventStore
    >>> store = EventStore(":memory:")
    >>> result = Funnel(["view", "purchase"]).compute(store)  # doctest: +SKIP
    >>> [(s.name, s.count) for s in result.steps]  # doctest: +SKIP

    References
    ----------
    PostHog funnels (ordered / strict / unordered, exclusion steps, conversion window, breakdown
    attribution to the first step): https://posthog.com/docs/product-analytics/funnels
    """

    steps: Sequence[Step | str] | None = None
    unit: str = "session"
    window: timedelta | str | float | None = "auto"
    order: str = "ordered"
    exclusions: Sequence[Exclusion] = field(default_factory=tuple)
    breakdown: str | None = None
    breakdown_limit: int = 10
    start: date | datetime | str | None = None
    end: date | datetime | str | None = None
    trend: str = "day"
    confidence: float = 0.95

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "unit": [Options(("session", "user"))],
        "order": [Options(("ordered", "strict", "unordered"))],
        "breakdown": [str, None],
        "breakdown_limit": [Interval(int, 1, None)],
        "trend": [Options(("hour", "day", "week", "month"))],
        "confidence": [Interval(float, 0, 1, closed="neither")],
    }

    # -- preparing ------------------------------------------------------------------------------
    def _steps(self, store: Any) -> tuple[list[Step], list[str]]:
        if self.steps is not None:
            steps = [s if isinstance(s, Step) else parse_step(s) for s in self.steps]
            if not steps:
                raise InvalidParameterError("A funnel needs at least one step. Got an empty list.")
            return steps, []
        seen = {r[0] for r in store.con.execute("SELECT DISTINCT event_type FROM events").fetchall()}
        steps = [Step(t) for t in DEFAULT_STEPS if t in seen]
        skipped = [t for t in DEFAULT_STEPS if t not in seen]
        if not steps:
            raise DataError(
                f"The store {str(store.path)!r} has no view, cart_add, checkout or purchase events: "
                "load some with `cartlift ingest` first."
            )
        return steps, skipped

    def _window(self) -> timedelta | None:
        if isinstance(self.window, str) and self.window.strip().lower() == "auto":
            return timedelta(days=1) if self.unit == "user" else None
        return parse_duration(self.window, "conversion window")

    def _check(self, steps: list[Step], exclusions: list[Exclusion]) -> None:
        n = len(steps)
        if self.order == "unordered":
            if len(set(steps)) < n:
                raise InvalidParameterError(
                    "An unordered funnel needs distinct steps (one event cannot count twice). "
                    f"Got {[s.name for s in steps]}."
                )
            if exclusions:
                raise InvalidParameterError(
                    "Exclusions need an order between steps: use order='ordered' or 'strict' with exclusions."
                )
        for x in exclusions:
            to = x.to_step if x.to_step is not None else n
            if not (1 <= x.from_step < to <= n):
                raise InvalidParameterError(
                    f"An exclusion must sit between two steps, 1 <= from_step < to_step <= {n}. "
                    f"Got from_step={x.from_step}, to_step={x.to_step}."
                )

    def _carry(self, store: Any) -> tuple[dict[str, str], bool]:
        """Columns to read at the entry event for the breakdown, and whether products are joined later."""
        bd = self.breakdown
        if bd is None or bd in ("hour", "weekday"):
            return {}, False
        if bd == "price_band":
            return {"bd_price": "e.price"}, False
        if bd == "new_vs_returning":
            return {"bd_user": "e.user_id", "bd_session": "e.session_id"}, False
        if bd.startswith("properties."):
            key = bd.removeprefix("properties.")
            if not key:
                raise InvalidParameterError("Name the key of a properties breakdown: properties.<key>.")
            path = "$." + _q(key)
            return {"bd_value": f"json_extract_string(e.properties, {_lit(path)})"}, False
        event_cols = _columns(store, "events")
        if bd in event_cols and bd not in _NOT_BREAKDOWNS:
            return {"bd_value": f"CAST(e.{_q(bd)} AS VARCHAR)"}, False
        if bd in _columns(store, "products") and bd != "product_id":
            return {"bd_pid": "e.product_id"}, True
        allowed = [c for c in event_cols if c not in _NOT_BREAKDOWNS] + [
            c for c in _columns(store, "products") if c != "product_id"
        ]
        raise InvalidParameterError(
            f"Cannot break a funnel down by {bd!r}. Use an events or products column "
            f"({', '.join(allowed)}), properties.<key>, or one of {', '.join(DERIVED_BREAKDOWNS)}."
        )

    # -- computing ------------------------------------------------------------------------------
    def compute(self, store: Any) -> FunnelResult:
        """Run the funnel on ``store`` (an `cartlift.events.EventStore`).

        Returns
        -------
        FunnelResult
            Steps with counts, conversions and Wilson intervals, time to convert, trend and
            (if asked) the breakdown with its chi-square tests.
        """
        validate_params(self)
        steps, skipped = self._steps(store)
        exclusions = [x if isinstance(x, Exclusion) else Exclusion(x) for x in self.exclusions]
        self._check(steps, exclusions)
        window = self._window()
        start = parse_bound(self.start, end=False, what="start of the entry range")
        end = parse_bound(self.end, end=True, what="end of the entry range")
        if start is not None and end is not None and end <= start:
            raise InvalidParameterError(f"The entry range is empty: end {end} is not after start {start}.")
        carry, join_products_later = self._carry(store)
        query = UnitsQuery(
            steps=steps,
            unit=self.unit,
            order=self.order,
            window=window,
            start=start,
            end=end,
            exclusions=exclusions,
            carry=carry,
            join_products=any(s.needs_products for s in steps)
            or any(x.step.needs_products for x in exclusions),
        )
        sql, params = units_sql(query)
        table = f"_cl_funnel_{uuid.uuid4().hex[:12]}"
        con = store.con
        con.execute(f"CREATE TEMP TABLE {table} AS {sql}", params)
        try:
            return self._summarise(store, table, steps, skipped, window, start, end, join_products_later)
        finally:
            con.execute(f"DROP TABLE IF EXISTS {table}")

    def _summarise(
        self,
        store: Any,
        table: str,
        steps: list[Step],
        skipped: list[str],
        window: timedelta | None,
        start: datetime | None,
        end: datetime | None,
        join_products: bool,
    ) -> FunnelResult:
        con = store.con
        n = len(steps)
        counts_sql = ", ".join(f"count(*) FILTER (WHERE level >= {j})" for j in range(1, n + 1))
        gaps = "".join(
            f", quantile_cont(epoch(t{j}) - epoch(t{j - 1}), [0.5, 0.9]) FILTER (WHERE level >= {j})"
            for j in range(2, n + 1)
        )
        # excluded units are out of every figure
        row = con.execute(
            f"SELECT (SELECT count(*) FROM {table} WHERE excluded), {counts_sql}{gaps} FROM {table} WHERE NOT excluded"
        ).fetchall()[0]
        excluded = int(row[0])
        counts = [int(c) for c in row[1 : n + 1]]
        out_steps = funnel_steps([s.name for s in steps], counts, [None, *row[n + 1 :]], self.confidence)
        last_ts = con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
        notes = [f"{t} is not a step: the store has no {t} events" for t in skipped]
        if excluded:
            notes.append(f"{excluded:,} units were dropped by the exclusion steps")
        return FunnelResult(
            steps=tuple(out_steps),
            unit=self.unit,
            order=self.order,
            window_seconds=None if window is None else window.total_seconds(),
            start=start,
            end=end,
            entered=counts[0],
            excluded=excluded,
            time_to_convert=self._time_to_convert(con, table, n),
            trend=self._trend(con, table, n, window, last_ts),
            trend_period=self.trend,
            breakdown=self._breakdown(store, table, n, join_products),
            skipped_steps=tuple(skipped),
            notes=tuple(notes),
        )

    def _time_to_convert(self, con: Any, table: str, n: int) -> TimeToConvert:
        if n == 1:
            converted = int(con.execute(f"SELECT count(*) FROM {table} WHERE NOT excluded").fetchall()[0][0])
            return TimeToConvert(converted, None, None, None)
        edges = [b[0] for b in _BINS]
        bins = ", ".join(
            f"count(*) FILTER (WHERE s >= {lo}" + (f" AND s < {edges[i + 1]})" if i + 1 < len(edges) else ")")
            for i, lo in enumerate(edges)
        )
        row = con.execute(
            f"SELECT count(*), quantile_cont(s, [0.5, 0.9]), avg(s), {bins} "
            f"FROM (SELECT epoch(t{n}) - epoch(t1) AS s FROM {table} WHERE NOT excluded AND level = {n})"
        ).fetchall()[0]
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

    def _trend(
        self, con: Any, table: str, n: int, window: timedelta | None, last_ts: datetime | None
    ) -> tuple[TrendPoint, ...]:
        rows = con.execute(
            f"SELECT date_trunc('{self.trend}', t1) AS period, count(*), count(*) FILTER (WHERE level = {n}), "
            f"max(t1) FROM {table} WHERE NOT excluded GROUP BY 1 ORDER BY 1"
        ).fetchall()
        points = []
        for period, entered, converted, latest in rows:
            lo, hi = wilson_interval(int(converted), int(entered), self.confidence)
            # the last entrant of the period needs its whole window before the rate is final
            complete = last_ts is not None and (latest + (window or timedelta(0))) <= last_ts
            points.append(
                TrendPoint(
                    period=period,
                    entered=int(entered),
                    converted=int(converted),
                    conversion=converted / entered if entered else None,
                    ci_low=lo,
                    ci_high=hi,
                    complete=bool(complete),
                )
            )
        return tuple(points)

    def _breakdown(self, store: Any, table: str, n: int, join_products: bool) -> Breakdown | None:
        bd = self.breakdown
        if bd is None:
            return None
        con = store.con
        source = f"{table} u"
        if bd == "hour":
            value = "lpad(CAST(hour(u.t1) AS VARCHAR), 2, '0') || 'h'"
        elif bd == "weekday":
            value = "CAST(isodow(u.t1) AS VARCHAR) || ' ' || dayname(u.t1)"
        elif bd == "price_band":
            value = _price_band_sql(con, table)
        elif bd == "new_vs_returning":
            source += (
                " LEFT JOIN (SELECT user_id, min(ts) AS first_seen FROM events "
                f"WHERE user_id IN (SELECT bd_user FROM {table}) GROUP BY 1) fs ON fs.user_id = u.bd_user"
                " LEFT JOIN (SELECT session_id, min(ts) AS started FROM events "
                f"WHERE session_id IN (SELECT bd_session FROM {table}) GROUP BY 1) ss ON ss.session_id = u.bd_session"
            )
            value = "CASE WHEN fs.first_seen < ss.started THEN 'returning' ELSE 'new' END"
        elif join_products:
            source += " LEFT JOIN products p ON p.product_id = u.bd_pid"
            value = f"CAST(p.{_q(bd)} AS VARCHAR)"
        else:
            value = "u.bd_value"
        counts = ", ".join(f"count(*) FILTER (WHERE level >= {j})" for j in range(1, n + 1))
        rows = con.execute(
            f"""WITH v AS (SELECT coalesce({value}, '(none)') AS value, u.level FROM {source} WHERE NOT u.excluded),
                top AS (SELECT value FROM v GROUP BY value ORDER BY count(*) DESC, value LIMIT {int(self.breakdown_limit)})
                SELECT CASE WHEN value IN (SELECT value FROM top) THEN value ELSE '(other)' END AS g, {counts}
                FROM v GROUP BY g ORDER BY 2 DESC, g"""
        ).fetchall()
        entered = [int(r[1]) for r in rows]
        converted = [int(r[n]) for r in rows]
        total_e, total_c = sum(entered), sum(converted)
        pvals: list[float | None] = []
        for e, c in zip(entered, converted, strict=True):
            test = chi_square([[c, e - c], [total_c - c, (total_e - e) - (total_c - c)]])
            pvals.append(test.p_value)
        adjusted = holm(pvals)
        groups = []
        for r, e, c, p, pa in zip(rows, entered, converted, pvals, adjusted, strict=True):
            lo, hi = wilson_interval(c, e, self.confidence)
            groups.append(
                BreakdownGroup(
                    value=str(r[0]),
                    counts=tuple(int(x) for x in r[1:]),
                    entered=e,
                    converted=c,
                    conversion=c / e if e else None,
                    ci_low=lo,
                    ci_high=hi,
                    p_value=p,
                    p_value_adjusted=pa,
                )
            )
        overall = chi_square([[c, e - c] for e, c in zip(entered, converted, strict=True)])
        return Breakdown(
            column=bd,
            groups=tuple(groups),
            chi2=overall.statistic,
            dof=overall.dof,
            p_value=overall.p_value,
            cramers_v=overall.cramers_v,
            note=overall.note,
        )


def _price_band_sql(con: Any, table: str) -> str:
    """Quartile bands of the entry price, with edges rounded to 2 significant digits for reading."""
    q = con.execute(f"SELECT quantile_cont(bd_price, [0.25, 0.5, 0.75]) FROM {table}").fetchall()[0][0]
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


def _columns(store: Any, table: str) -> list[str]:
    rows = store.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? "
        "ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


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


def funnel(store: Any, steps: Sequence[Step | str] | None = None, **options: Any) -> FunnelResult:
    """Compute a funnel on ``store``: shorthand for ``Funnel(steps, **options).compute(store)``.

    See `Funnel` for the options.
    """
    return Funnel(steps, **options).compute(store)
