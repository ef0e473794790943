"""Funnels on the event store: steps, conversion window, step order, exclusions, breakdowns, trends.

The per-unit work (who reached which step when) is one SQL query in DuckDB (`_funnel_sql`);
the result is a small table of one row per unit that entered, from which every figure is an
aggregate, again in SQL (`_funnel_summary`, shared with the Spark engine). Python only adds the
statistics on those counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

from cartlift._params import Interval, Options, validate_params
from cartlift.analytics._funnel_result import FunnelResult
from cartlift.analytics._funnel_sql import UnitsQuery, units_sql
from cartlift.analytics._funnel_summary import (
    DERIVED_BREAKDOWNS,
    BreakdownSource,
    Rows,
    SqlDialect,
    breakdown,
    breakdown_source,
    carry_columns,
    funnel_notes,
    funnel_steps,
    step_summary,
    time_to_convert,
    trend_points,
)
from cartlift.analytics._steps import Exclusion, Step, parse_bound, parse_duration, parse_step
from cartlift.errors import DataError, InvalidParameterError
from cartlift.store import EventStore

__all__ = ["DEFAULT_STEPS", "DERIVED_BREAKDOWNS", "Funnel", "funnel", "funnel_steps"]

DEFAULT_STEPS = ("view", "cart_add", "checkout", "purchase")
"""The classic e-commerce funnel; steps whose event type the store has never seen are skipped."""

_DUCKDB = SqlDialect()


@dataclass(frozen=True)
class FunnelPlan:
    """A funnel made concrete for one data set: the per-unit query and what the summary needs."""

    query: UnitsQuery
    skipped: list[str]  # default steps whose event type the data has never seen
    breakdown: BreakdownSource | None


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
    >>> from cartlift.store import EventStore
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
    def _steps(self, seen: Callable[[], Collection[str]], no_steps: str) -> tuple[list[Step], list[str]]:
        if self.steps is not None:
            steps = [s if isinstance(s, Step) else parse_step(s) for s in self.steps]
            if not steps:
                raise InvalidParameterError("A funnel needs at least one step. Got an empty list.")
            return steps, []
        types = seen()
        steps = [Step(t) for t in DEFAULT_STEPS if t in types]
        skipped = [t for t in DEFAULT_STEPS if t not in types]
        if not steps:
            raise DataError(no_steps)
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

    def plan(
        self,
        *,
        seen: Callable[[], Collection[str]],
        columns: Callable[[str], Sequence[str]],
        no_steps: str,
        dialect: SqlDialect = _DUCKDB,
    ) -> FunnelPlan:
        """Validate the funnel against a data set and build its per-unit query.

        Parameters
        ----------
        seen : callable
            Returns the event types present (asked only for the default steps).
        columns : callable
            ``columns("events")`` / ``columns("products")``: the columns of those tables
            (asked only to resolve a column breakdown; empty when there is no such table).
        no_steps : str
            The error when the data has none of the default steps' event types (and none were given).
        dialect : SqlDialect
            The engine's spellings of the columns carried from the entry event.
        """
        validate_params(self)
        steps, skipped = self._steps(seen, no_steps)
        exclusions = [x if isinstance(x, Exclusion) else Exclusion(x) for x in self.exclusions]
        self._check(steps, exclusions)
        window = self._window()
        start = parse_bound(self.start, end=False, what="start of the entry range")
        end = parse_bound(self.end, end=True, what="end of the entry range")
        if start is not None and end is not None and end <= start:
            raise InvalidParameterError(f"The entry range is empty: end {end} is not after start {start}.")
        source = breakdown_source(self.breakdown, columns)
        query = UnitsQuery(
            steps=steps,
            unit=self.unit,
            order=self.order,
            window=window,
            start=start,
            end=end,
            exclusions=exclusions,
            carry=carry_columns(source, dialect),
            join_products=any(s.needs_products for s in steps)
            or any(x.step.needs_products for x in exclusions),
        )
        return FunnelPlan(query, skipped, source)

    # -- computing ------------------------------------------------------------------------------
    def compute(self, store: EventStore) -> FunnelResult:
        """Run the funnel on ``store`` (an `cartlift.events.EventStore`).

        Returns
        -------
        FunnelResult
            Steps with counts, conversions and Wilson intervals, time to convert, trend and
            (if asked) the breakdown with its chi-square tests.

        Notes
        -----
        Another engine (`cartlift.spark.spark_funnel`) does the same three things: `plan`, its
        own per-unit query, then `summarise` on that engine.
        """
        con = store.con
        plan = self.plan(
            seen=lambda: {r[0] for r in con.execute("SELECT DISTINCT event_type FROM events").fetchall()},
            columns=lambda table: _columns(store, table),
            no_steps=f"The store {str(store.path)!r} has no view, cart_add, checkout or purchase events: "
            "load some with `cartlift ingest` first.",
        )
        sql, params = units_sql(plan.query)
        table = f"_cl_funnel_{uuid.uuid4().hex[:12]}"
        con.execute(f"CREATE TEMP TABLE {table} AS {sql}", params)
        try:
            last_ts = con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
            return self.summarise(lambda q: con.execute(q).fetchall(), _DUCKDB, table, plan, last_ts)
        finally:
            con.execute(f"DROP TABLE IF EXISTS {table}")

    def summarise(
        self,
        rows: Rows,
        dialect: SqlDialect,
        table: str,
        plan: FunnelPlan,
        last_ts: datetime | None,
        *,
        events: str = "events",
        products: str = "products",
    ) -> FunnelResult:
        """Every figure of the funnel from its per-unit ``table`` on an engine (``rows`` runs a query).

        ``last_ts`` is the last event time of the data (it says which trend periods are final);
        ``events`` and ``products`` name the engine's tables.
        """
        q = plan.query
        n = len(q.steps)
        excluded, counts, steps = step_summary(
            rows, dialect, table, [s.name for s in q.steps], self.confidence
        )
        return FunnelResult(
            steps=tuple(steps),
            unit=self.unit,
            order=self.order,
            window_seconds=None if q.window is None else q.window.total_seconds(),
            start=q.start,
            end=q.end,
            entered=counts[0],
            excluded=excluded,
            time_to_convert=time_to_convert(rows, dialect, table, n),
            trend=trend_points(
                rows,
                dialect,
                table,
                n,
                period=self.trend,
                window=q.window,
                last_ts=last_ts,
                confidence=self.confidence,
            ),
            trend_period=self.trend,
            breakdown=None
            if plan.breakdown is None
            else breakdown(
                rows,
                dialect,
                table,
                n,
                plan.breakdown,
                limit=self.breakdown_limit,
                confidence=self.confidence,
                events=events,
                products=products,
            ),
            skipped_steps=tuple(plan.skipped),
            notes=tuple(funnel_notes(plan.skipped, excluded)),
        )


def _columns(store: EventStore, table: str) -> list[str]:
    rows = store.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? "
        "ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def funnel(store: EventStore, steps: Sequence[Step | str] | None = None, **options: Any) -> FunnelResult:
    """Compute a funnel on ``store``: shorthand for ``Funnel(steps, **options).compute(store)``.

    See `Funnel` for the options.
    """
    return Funnel(steps, **options).compute(store)
