"""The per-unit funnel query in Spark SQL, with the semantics of `cartlift.analytics._funnel_sql`.

The same order key (``unix_micros(ts) * 8 + rank(event_type)``), the same entry range, scope,
window and "best attempt" rules; only the plans differ, because Spark SQL has no ASOF join:

*ordered*: each later step is the first matching event after the previous one, a join on the
unit and a ``min``; with a window the candidates are the first entry and, for every step-2
event, the last step-1 event before it (a running ``max`` over the unit's step-1 and step-2
events ordered by key), the same candidates as the DuckDB ASOF plan.

*strict*: ``lead(..., j)`` over the unit's full event stream ordered by key and event id.

*unordered*: for every event as a start, the first occurrence of each step at or after it
(a window ``min`` over the following rows), kept when within the window.

*exclusions*: the first excluding event after the from-step is a join and a ``min``.

Step times are microseconds since the epoch (BIGINT): the summary (`_funnel_summary`) reads them
through `SparkDialect`. Ties that DuckDB leaves to the plan (two entries of one unit at the same
key) are broken here by the carried values and the event id, so a Spark run is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cartlift.analytics._funnel_sql import (
    UnitsQuery,
    exclusion_flag,
    order_key,
    scope_bounds,
    unordered_start,
)
from cartlift.analytics._funnel_summary import SqlDialect
from cartlift.analytics._steps import Step
from cartlift.errors import InvalidParameterError

__all__ = ["SPARK", "SparkDialect", "spark_lit", "spark_units_sql"]

_EPOCH = datetime(1970, 1, 1)
US = "unix_micros(CAST(e.ts AS TIMESTAMP))"
ORDER_KEY = order_key(US)


def spark_lit(value: Any) -> str:
    """A Spark SQL string literal: a backslash escapes (``''`` would be two adjacent literals)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class SparkDialect(SqlDialect):
    """Spark SQL spellings of the shared funnel summary; step times are microseconds (BIGINT)."""

    text = "STRING"

    def ident(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def seconds(self, col: str) -> str:
        # the same double division as DuckDB's epoch(), so time gaps and histogram bins agree to the bit
        return f"CAST({col} AS DOUBLE) / 1e6"

    def quantiles(self, expr: str, levels: Sequence[float]) -> str:
        # percentile interpolates linearly between order statistics, as DuckDB's quantile_cont
        return f"percentile({expr}, array({', '.join(str(q) for q in levels)}))"

    def period(self, trend: str, col: str) -> str:
        # the session time zone is UTC (spark_session); week starts on Monday as in DuckDB
        return f"unix_micros(date_trunc('{trend}', timestamp_micros({col})))"

    def hour_label(self, col: str) -> str:
        return f"lpad(CAST(hour(timestamp_micros({col})) AS STRING), 2, '0') || 'h'"

    def weekday_label(self, col: str) -> str:
        ts = f"timestamp_micros({col})"
        return f"CAST(weekday({ts}) + 1 AS STRING) || ' ' || date_format({ts}, 'EEEE')"

    def json_text(self, col: str, key: str) -> str:
        # get_json_object gives the text DuckDB's json_extract_string gives (strings unquoted,
        # numbers and nested values re-serialised compactly); its bracket path cannot hold these
        bad = [c for c in ("'", "\\", "[", "]", "*") if c in key]
        if bad:
            raise InvalidParameterError(
                f"The Spark engine cannot read the properties key {key!r} (it holds {bad[0]!r}): "
                "use --engine duckdb for this breakdown."
            )
        return f"get_json_object({col}, {spark_lit(f'$[{chr(39)}{key}{chr(39)}]')})"

    def timestamp(self, value: Any) -> datetime | None:
        return None if value is None else _EPOCH + timedelta(microseconds=int(value))


SPARK = SparkDialect()


def _ts(value: datetime) -> str:
    # a naive UTC time read in the session time zone, UTC
    return f"TIMESTAMP '{value.isoformat(sep=' ')}'"


def _range(low: datetime | None, high: datetime | None) -> str:
    conds = []
    if low is not None:
        conds.append(f"CAST(e.ts AS TIMESTAMP) >= {_ts(low)}")
    if high is not None:
        conds.append(f"CAST(e.ts AS TIMESTAMP) < {_ts(high)}")
    return " AND ".join(conds) or "TRUE"


@dataclass(frozen=True)
class _Query:
    """A `UnitsQuery` bound to the Spark views of the events and products."""

    q: UnitsQuery
    events: str
    products: str | None

    @property
    def unit(self) -> str:
        return "e.session_id" if self.q.unit == "session" else "e.user_id"

    @property
    def scope(self) -> str:
        return _range(*scope_bounds(self.q))

    @property
    def entry(self) -> str:
        return _range(self.q.start, self.q.end)

    def within(self, us: str, k1: str = "k1") -> str:
        """Whether the time ``us`` (microseconds) is inside the window opened by the entry key ``k1``."""
        w = self.q.window
        return "TRUE" if w is None else f"{us} <= div({k1}, 8) + {round(w.total_seconds() * 1_000_000)}"

    def source(self, join: bool) -> str:
        if not join:
            return f"{self.events} e"
        if self.products is None:  # pragma: no cover - spark_funnel checks first
            raise InvalidParameterError("This funnel needs the products table.")
        return f"{self.events} e LEFT JOIN {self.products} p ON p.product_id = e.product_id"

    def pred(self, step: Step) -> str:
        return step.sql(quote=spark_lit)

    def step_rel(self, step: Step, extra: str = "") -> str:
        """``unit, k`` (and ``extra``) of the events completing ``step`` within the scope."""
        return (
            f"SELECT {self.unit} AS unit, {ORDER_KEY} AS k{extra} FROM {self.source(step.needs_products)} "
            f"WHERE {self.pred(step)} AND {self.scope}"
        )

    def base(self, *, all_events: bool) -> str:
        """Every event that can matter (``all_events``) or those of the steps' types, with the step flags."""
        q = self.q
        flags = [f"{self.pred(s)} AS m{i}" for i, s in enumerate(q.steps, start=1)]
        carry = [f"{expr} AS {name}" for name, expr in q.carry.items()]
        cols = [f"{self.unit} AS unit", f"{ORDER_KEY} AS k", "e.event_id AS id", *flags, *carry]
        cols.append(f"({self.entry}) AS en")
        cond = self.scope
        if not all_events:
            types = sorted({t for s in q.steps for t in s.event_types})
            cond += " AND e.event_type IN (" + ", ".join(spark_lit(t) for t in types) + ")"
        return f"SELECT {', '.join(cols)} FROM {self.source(q.join_products)} WHERE {cond}"


def _level(n: int) -> str:
    return " + ".join(["1"] + [f"CAST(k{j} IS NOT NULL AS INT)" for j in range(2, n + 1)])


def _pick(rel: str, tiebreak: str) -> str:
    """Each unit's attempt with the most steps, the earliest entry among ties."""
    return (
        f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY unit ORDER BY level DESC, k1, {tiebreak}) "
        f"AS rn FROM {rel}) WHERE rn = 1"
    )


def _ordered(s: _Query) -> list[str]:
    q = s.q
    n = len(q.steps)
    names = list(q.carry)
    # the entry's key and carried values travel as one struct, so "earliest entry" takes its values along
    fields = "named_struct('k', k" + "".join(f", '{c}', {c}" for c in names) + ")"
    extra = "".join(f", {expr} AS {name}" for name, expr in q.carry.items())
    ctes = [f"s1 AS ({s.step_rel(q.steps[0], extra)} AND {s.entry})"]
    ctes += [f"s{j} AS ({s.step_rel(q.steps[j - 1])})" for j in range(2, n + 1)]
    ctes.append(f"entry1 AS (SELECT unit, min({fields}) AS f FROM s1 GROUP BY unit)")
    unpack = "".join(f", f.{c} AS {c}" for c in names)
    ks = ", ".join(f"k{j}" for j in range(1, n + 1))
    if q.window is None or n == 1:
        # one candidate per unit: the first entry; each later step is the first match after the previous
        ctes.append("c1 AS (SELECT unit, f, f.k AS k1 FROM entry1)")
        prev = "c1"
        for j in range(2, n + 1):
            ctes.append(
                f"n{j} AS (SELECT c.unit, min(s.k) AS k{j} FROM {prev} c "
                f"JOIN s{j} s ON s.unit = c.unit AND s.k > c.k{j - 1} GROUP BY c.unit)"
            )
            prev = f"n{j}"
        joins = "".join(f" LEFT JOIN n{j} USING (unit)" for j in range(2, n + 1))
        ctes.append(f"best AS (SELECT unit, {_level(n)} AS level, {ks}{unpack} FROM c1{joins})")
        return ctes
    # candidates: the first entry, and the last step-1 event before each step-2 event (at equal
    # keys the step-2 row sorts first, so it never sees a step-1 event of its own key)
    ctes.append(
        f"tagged AS (SELECT unit, k, 1 AS src, {fields} AS f FROM s1 UNION ALL SELECT unit, k, 0, NULL FROM s2)"
    )
    ctes.append(
        "lastbefore AS (SELECT unit, src, max(f) OVER (PARTITION BY unit ORDER BY k, src "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS f FROM tagged)"
    )
    ctes.append(
        "cand AS (SELECT unit, f FROM entry1 UNION SELECT unit, f FROM lastbefore WHERE src = 0 AND f IS NOT NULL)"
    )
    ctes.append("c1 AS (SELECT unit, f, f.k AS k1 FROM cand)")
    keep = ["unit", "f", "k1"]
    for j in range(2, n + 1):
        cols = ", ".join(f"c.{c}" for c in keep)
        ctes.append(
            f"r{j} AS (SELECT {cols}, min(s.k) AS raw{j} FROM c{j - 1} c "
            f"LEFT JOIN s{j} s ON s.unit = c.unit AND s.k > c.k{j - 1} GROUP BY {cols})"
        )
        ctes.append(
            f"c{j} AS (SELECT {', '.join(keep)}, CASE WHEN {s.within(f'div(raw{j}, 8)')} "
            f"THEN raw{j} END AS k{j} FROM r{j})"
        )
        keep.append(f"k{j}")
    ctes.append(f"lev AS (SELECT *, {_level(n)} AS level FROM c{n})")
    ctes.append(f"best AS (SELECT unit, level, {ks}{unpack} FROM ({_pick('lev', 'f')}))")
    return ctes


def _strict(s: _Query) -> list[str]:
    q = s.q
    n = len(q.steps)
    carry = "".join(f", {c}" for c in q.carry)
    leads = "".join(
        f", lead(m{j}, {j - 1}) OVER w AS n{j}, lead(k, {j - 1}) OVER w AS lk{j}" for j in range(2, n + 1)
    )
    ctes = [
        f"ev AS ({s.base(all_events=True)})",
        f"sq AS (SELECT unit, k, id, en, m1{carry}{leads} FROM ev WINDOW w AS (PARTITION BY unit ORDER BY k, id))",
    ]
    cols = []
    reached: list[str] = []
    for j in range(2, n + 1):
        reached.append(f"coalesce(n{j}, FALSE) AND {s.within(f'div(lk{j}, 8)', 'k')}")
        cond = " AND ".join(f"({r})" for r in reached)
        cols.append(f", CASE WHEN {cond} THEN lk{j} END AS k{j}")
    ctes.append(f"c1 AS (SELECT unit, k AS k1, id AS id1{carry}{''.join(cols)} FROM sq WHERE m1 AND en)")
    ctes.append(f"lev AS (SELECT *, {_level(n)} AS level FROM c1)")
    ctes.append(f"best AS ({_pick('lev', 'id1')})")
    return ctes


def _unordered(s: _Query) -> list[str]:
    q = s.q
    n = len(q.steps)
    carry = "".join(f", {c}" for c in q.carry)
    nexts = "".join(f", min(CASE WHEN m{j} THEN div(k, 8) END) OVER f AS n{j}" for j in range(1, n + 1))
    ctes = [
        f"ev AS ({s.base(all_events=False)})",
        f"nx AS (SELECT unit, k, id, en AND {unordered_start(n)} AS st{carry}{nexts} FROM ev "
        "WINDOW f AS (PARTITION BY unit ORDER BY k, id ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING))",
    ]
    found = ", ".join(f"n{j}" for j in range(1, n + 1))
    done = f"array_sort(filter(array({found}), x -> x IS NOT NULL AND {s.within('x', 'k')}))"
    ctes.append(f"c0 AS (SELECT unit, k AS k1, id AS id1{carry}, {done} AS done FROM nx WHERE st)")
    times = ", ".join(f"try_element_at(done, {j}) AS t{j}" for j in range(1, n + 1))
    ctes.append(f"lev AS (SELECT unit, k1, id1{carry}, {times}, size(done) AS level FROM c0)")
    ctes.append(f"best AS ({_pick('lev', 'id1')})")
    return ctes


def spark_units_sql(q: UnitsQuery, events: str, products: str | None = None) -> str:
    """One row per unit that entered: ``unit, level, excluded, t1..tK`` (microseconds) and the carried columns.

    ``events`` and ``products`` are the names of Spark views of those tables (``products`` only
    when a step, an exclusion or the breakdown reads the catalog).
    """
    s = _Query(q, events, products)
    n = len(q.steps)
    if q.order == "strict":
        ctes = _strict(s)
    elif q.order == "unordered":
        ctes = _unordered(s)
    else:
        ctes = _ordered(s)
    flags = []
    joins = ""
    for j, x in enumerate(q.exclusions, start=1):
        # the first excluding event after the from-step
        ctes.append(f"xe{j} AS ({s.step_rel(x.step)})")
        ctes.append(
            f"xm{j} AS (SELECT b.unit, min(x.k) AS xk{j} FROM best b "
            f"JOIN xe{j} x ON x.unit = b.unit AND x.k > b.k{x.from_step} GROUP BY b.unit)"
        )
        joins += f" LEFT JOIN xm{j} USING (unit)"
        flags.append(exclusion_flag(q, j, s.within(f"div(xk{j}, 8)")))
    flag = " OR ".join(flags) if flags else "FALSE"
    if q.order == "unordered":
        times = ", ".join(f"t{j}" for j in range(1, n + 1))
    else:
        times = ", ".join(f"div(k{j}, 8) AS t{j}" for j in range(1, n + 1))
    carry = "".join(f", {c}" for c in q.carry)
    return (
        "WITH "
        + ",\n".join(ctes)
        + f"\nSELECT unit, level, coalesce({flag}, FALSE) AS excluded, {times}{carry} FROM best{joins}"
    )
