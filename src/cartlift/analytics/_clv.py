"""Customer lifetime value: RFM summaries from orders (store or file), BG/NBD + Gamma-Gamma, CLV per customer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final

import duckdb
import numpy as np
import pandas as pd

from cartlift._params import Interval, Options, validate_params
from cartlift.analytics._clv_models import BGNBD, GammaGamma
from cartlift.analytics._steps import parse_bound
from cartlift.errors import ConvergenceError, DataError, InvalidParameterError
from cartlift.guardrails import Guardrail, degenerate_bgnbd, short_history
from cartlift.store import EventStore

__all__ = [
    "CLVResult",
    "clv_from_summary",
    "read_transactions",
    "summary_from_store",
    "summary_from_transactions",
]

_UNIT_DAYS = {"days": 1.0, "weeks": 7.0}
_CUSTOMER = ("customer_id", "customer", "user_id", "customerid", "id")
_DATE = ("date", "order_date", "ts", "timestamp", "invoicedate", "datetime")
_VALUE = ("dollar_value", "value", "amount", "revenue", "total", "monetary_value", "price")


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"No {what} column {wanted!r} in the file. Its columns: {', '.join(columns)}.")
        return wanted
    lower = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise DataError(
        f"Cannot tell which column holds the {what}. Columns: {', '.join(columns)}. "
        f"Name it with the {what} option (e.g. --{what.split()[0]}-col)."
    )


def read_transactions(
    path: str | Path,
    *,
    customer: str | None = None,
    date_col: str | None = None,
    value: str | None = None,
) -> pd.DataFrame:
    """Read a transactions file into ``customer, ts, value`` (one row per transaction).

    CSV/TSV/semicolon files with a header are read by DuckDB; whitespace-aligned files (as the
    CDNOW ``CDNOW_master.txt``) by pandas. A file without a header gets columns ``column0``,
    ``column1``, ... to map with ``customer=``, ``date_col=`` and ``value=``. Dates may be ISO
    or ``YYYYMMDD``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"No transactions file at {str(path)!r}.")
    with path.open("r", encoding="utf-8", errors="replace") as f:
        first = f.readline()
    if any(sep in first for sep in (",", ";", "\t", "|")):
        con = duckdb.connect()
        try:
            frame = con.execute("SELECT * FROM read_csv(?, all_varchar = true)", [str(path)]).df()
        finally:
            con.close()
    else:
        tokens = first.split()
        has_header = bool(tokens) and not all(_numberish(t) for t in tokens)
        frame = pd.read_csv(path, sep=r"\s+", header=0 if has_header else None, dtype=str)
        if not has_header:
            frame.columns = [f"column{i}" for i in range(frame.shape[1])]
    cols = [str(c) for c in frame.columns]
    c_col = _pick(cols, customer, _CUSTOMER, "customer")
    d_col = _pick(cols, date_col, _DATE, "date")
    v_col = _pick(cols, value, _VALUE, "value")
    raw_dates = frame[d_col].astype(str).str.strip()
    compact = raw_dates.str.fullmatch(r"\d{8}")
    ts = pd.to_datetime(raw_dates.where(~compact), errors="coerce", format="mixed")
    ts = ts.where(~compact, pd.to_datetime(raw_dates.where(compact), format="%Y%m%d", errors="coerce"))
    amount = pd.to_numeric(frame[v_col], errors="coerce")
    bad = ts.isna() | amount.isna() | frame[c_col].isna()
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise DataError(
            f"{int(bad.sum()):,} transactions in {path.name} have an unreadable customer, date or value "
            f"(first at data row {i + 1}: {frame.iloc[i].to_dict()}). Fix or remove them."
        )
    return pd.DataFrame({"customer": frame[c_col].astype(str).str.strip(), "ts": ts, "value": amount})


def _numberish(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


_SUMMARY_SQL = """
WITH d AS (
    -- several orders of one customer on one day count as one transaction (as in Fader & Hardie's CDNOW data)
    SELECT customer, CAST(ts AS DATE) AS day, sum(value) AS value FROM {source}
    WHERE CAST(ts AS DATE) <= ? GROUP BY 1, 2
),
f AS (SELECT customer, min(day) AS first_day, max(day) AS last_day, count(*) AS days FROM d GROUP BY 1)
SELECT f.customer, f.days - 1 AS frequency,
       date_diff('day', f.first_day, f.last_day) / ? AS recency,
       date_diff('day', f.first_day, ?) / ? AS T,
       coalesce(avg(d.value) FILTER (WHERE d.day > f.first_day), 0) AS monetary_value
FROM f JOIN d ON d.customer = f.customer
GROUP BY f.customer, f.days, f.first_day, f.last_day
ORDER BY f.customer
"""


ANONYMOUS_PREFIX: Final = "anonymous:"
"""How importers name a buyer without a customer id (``anonymous:<invoice>``, one per order)."""
KNOWN_BUYERS: Final = f"user_id NOT LIKE '{ANONYMOUS_PREFIX}%'"
"""SQL keeping known customers: an anonymous buyer is one order, not a customer to segment or value."""

ORDERS_SQL = (
    "SELECT user_id AS customer, min(ts) AS ts, sum(coalesce(price, 0) * quantity) AS value "
    "FROM {events} WHERE event_type = 'purchase' GROUP BY user_id, coalesce(order_id, session_id)"
)
"""The orders of an event table (one per order id, or per session without one), as ``customer, ts, value``."""


def customer_orders(events: str, *, include_anonymous: bool = False) -> str:
    """`ORDERS_SQL` of ``events``, without anonymous buyers unless asked for."""
    sql = ORDERS_SQL.format(events=events)
    return sql if include_anonymous else sql.replace("WHERE ", f"WHERE {KNOWN_BUYERS} AND ", 1)


CLV_MIN_HISTORY_DAYS: Final = 90
"""BG/NBD learns dropout from gaps between repeat purchases: it needs several purchase cycles."""


def _check_unit(time_unit: str) -> float:
    if time_unit not in _UNIT_DAYS:
        raise InvalidParameterError(f"time_unit must be 'days' or 'weeks'. Got {time_unit!r} instead.")
    return _UNIT_DAYS[time_unit]


def summary_sql(source: str, end: date, time_unit: str) -> tuple[str, list[Any]]:
    """The summary query over ``source`` (a relation of ``customer, ts, value``) and its ``?`` parameters.

    The one definition of the summary: DuckDB runs it here, and ``cartlift.spark`` on Spark SQL.
    """
    k = _check_unit(time_unit)
    return _SUMMARY_SQL.format(source=source), [end, k, end, k]


def _summary(con: Any, source: str, end: date | None, time_unit: str) -> pd.DataFrame:
    _check_unit(time_unit)
    if end is None:
        last = con.execute(f"SELECT max(CAST(ts AS DATE)) FROM {source}").fetchall()[0][0]
        if last is None:
            raise DataError("No transactions: there is nothing to summarise.")
        end = last
    sql, params = summary_sql(source, end, time_unit)
    frame = con.execute(sql, params).df()
    return frame.set_index("customer")


def summary_from_transactions(
    transactions: pd.DataFrame,
    *,
    observation_end: date | datetime | str | None = None,
    time_unit: str = "weeks",
) -> pd.DataFrame:
    """Frequency, recency, T and monetary value per customer from ``customer, ts, value`` rows.

    *frequency* counts repeat transaction days; *recency* is the time from the first to the last
    one and *T* from the first to ``observation_end`` (default the last transaction day), in
    ``time_unit``; *monetary_value* is the mean value of the repeat days (0 without). Computed in
    DuckDB; transactions after ``observation_end`` are left out (a hold-out period).
    """
    end = parse_bound(observation_end, end=False, what="observation end")
    con = duckdb.connect()
    try:
        con.register("tx", transactions[["customer", "ts", "value"]])
        return _summary(con, "tx", None if end is None else end.date(), time_unit)
    finally:
        con.close()


def summary_from_store(
    store: EventStore,
    *,
    observation_end: date | datetime | str | None = None,
    time_unit: str = "days",
    include_anonymous: bool = False,
) -> pd.DataFrame:
    """The RFM summary of the store's buyers, from its purchase events (one order per order id or session).

    Anonymous buyers (``anonymous:<invoice>``) are left out unless ``include_anonymous``: each is
    one order of an unknown person, and counted as customers they would all look like one-time
    buyers who churned.
    """
    end = parse_bound(observation_end, end=False, what="observation end")
    source = f"({customer_orders('events', include_anonymous=include_anonymous)})"
    frame = _summary(store.con, source, None if end is None else end.date(), time_unit)
    if frame.empty:
        raise DataError("The store has no purchase events: CLV needs orders.")
    return frame


@dataclass(frozen=True)
class CLVResult:
    """Fitted BG/NBD (+ Gamma-Gamma) parameters and per-customer predictions.

    ``customers`` has, per customer: frequency, recency, T, monetary_value, ``p_alive``,
    ``expected_purchases`` over the horizon, and with spend data ``expected_spend`` and ``clv``.
    """

    bgnbd: dict[str, float | None]
    gamma_gamma: dict[str, float] | None
    time_unit: str
    horizon: float
    discount_rate: float
    margin: float
    customers: pd.DataFrame = field(repr=False)
    notes: tuple[str, ...] = ()
    warnings: tuple[Guardrail, ...] = ()

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """The ``cartlift clv --json`` document: parameters, totals and the top customers by value."""
        c = self.customers
        by = "clv" if "clv" in c else "expected_purchases"
        head = c.sort_values(by, ascending=False).head(top).reset_index()
        dist = None
        if "clv" in c:
            q = c["clv"].quantile([0.5, 0.9, 0.99])
            dist = {
                "total": float(c["clv"].sum()),
                "mean": float(c["clv"].mean()),
                "median": float(q.loc[0.5]),
                "p90": float(q.loc[0.9]),
                "p99": float(q.loc[0.99]),
            }
        return {
            "bgnbd": self.bgnbd,
            "gamma_gamma": self.gamma_gamma,
            "customers": len(c),
            "repeat_customers": int((c["frequency"] > 0).sum()),
            "time_unit": self.time_unit,
            "horizon": self.horizon,
            "discount_rate": self.discount_rate,
            "margin": self.margin,
            "expected_purchases_total": float(c["expected_purchases"].sum()),
            "mean_p_alive": float(c["p_alive"].mean()),
            "clv": dist,
            "top_customers": head.to_dict("records"),
            "notes": list(self.notes),
            "warnings": [w.to_dict() for w in self.warnings],
        }


class CLV:
    """The options of `clv_from_summary`, validated with the shared message format."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "horizon": [Interval(float, 0, None, closed="neither")],
        "discount_rate": [Interval(float, 0, None)],
        "margin": [Interval(float, 0, None, closed="neither")],
        "time_unit": [Options(("days", "weeks"))],
        "steps": [Interval(int, 1, None)],
    }

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def clv_from_summary(
    summary: pd.DataFrame,
    *,
    frequency: str = "frequency",
    recency: str = "recency",
    T: str = "T",
    monetary_value: str | None = "auto",
    time_unit: str = "weeks",
    horizon: float | None = None,
    discount_rate: float = 0.0,
    margin: float = 1.0,
    steps: int = 12,
) -> CLVResult:
    r"""Fit BG/NBD (and Gamma-Gamma when spend is given) and value each customer.

    .. math::

        \mathrm{CLV}_i = \text{margin} \cdot E[Z_i \mid x_i, \bar z_i] \sum_{s=1}^{S}
        \frac{E[Y_i(s\Delta)] - E[Y_i((s-1)\Delta)]}{(1 + d)^{s\Delta}}, \qquad \Delta = \text{horizon} / S

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per customer (the index is kept as the customer id).
    frequency, recency, T, monetary_value : str
        Column names; ``monetary_value="auto"`` uses a ``monetary_value`` column if there is one,
        None fits BG/NBD only.
    time_unit : {"days", "weeks"}
        The unit of recency and T (labels results and sets the default horizon).
    horizon : float, optional
        Prediction horizon in ``time_unit``; default one year (52 weeks or 365 days).
    discount_rate : float
        Discount rate per ``time_unit`` (0: undiscounted).
    margin : float
        Share of spend that is profit (1: value is revenue).
    steps : int
        Discounting steps over the horizon.

    Raises
    ------
    ConvergenceError
        When a fit does not converge (with the reason); results never carry NaN parameters.
    """
    horizon = float(horizon if horizon is not None else (52.0 if time_unit == "weeks" else 365.0))
    validate_params(
        CLV(
            horizon=horizon,
            discount_rate=float(discount_rate),
            margin=float(margin),
            time_unit=time_unit,
            steps=steps,
        )
    )
    for col in (frequency, recency, T):
        if col not in summary:
            raise DataError(
                f"The summary has no {col!r} column. Its columns: {', '.join(map(str, summary.columns))}; "
                "map them with frequency=, recency=, T= (--frequency-col ... on the command line)."
            )
    if monetary_value == "auto":
        monetary_value = "monetary_value" if "monetary_value" in summary else None
    elif monetary_value is not None and monetary_value not in summary:
        raise DataError(f"The summary has no monetary column {monetary_value!r}.")
    x = summary[frequency].to_numpy(dtype=float)
    t_x = summary[recency].to_numpy(dtype=float)
    age = summary[T].to_numpy(dtype=float)
    bg = BGNBD().fit(x, t_x, age)
    out = pd.DataFrame({"frequency": x, "recency": t_x, "T": age}, index=summary.index)
    out["p_alive"] = bg.probability_alive(x, t_x, age)
    grid = np.linspace(0, horizon, steps + 1)
    cumulative = np.stack(
        [bg.expected_purchases(g, x, t_x, age) if g > 0 else np.zeros_like(x) for g in grid]
    )
    out["expected_purchases"] = cumulative[-1]
    notes: list[str] = []
    gg_params = None
    if monetary_value is not None:
        m = summary[monetary_value].to_numpy(dtype=float)
        unpaid = (x > 0) & ~(m > 0)
        if unpaid.any():
            # refunds and free orders say nothing about spend; fit on the others and say so
            notes.append(
                f"{int(unpaid.sum()):,} repeat customers with a mean spend <= 0 were left out of the Gamma-Gamma fit"
            )
        out["monetary_value"] = m
        try:
            gg = GammaGamma().fit(x[~unpaid], m[~unpaid])
        except ConvergenceError as e:
            # value in money still: every customer at the repeat customers' mean spend per order
            paid = m[(x > 0) & ~unpaid]
            if paid.size == 0:
                raise
            notes.append(
                f"the spend model was not identified ({str(e).split(':')[0]}), so every customer is valued "
                f"at the repeat customers' mean spend per order, {float(paid.mean()):,.2f}"
            )
            out["expected_spend"] = float(paid.mean())
        else:
            gg_params = {**gg.params_, "log_likelihood": gg.log_likelihood_, "customers": gg.n_customers_}
            out["expected_spend"] = gg.expected_spend(x, m)
        per_step = np.diff(cumulative, axis=0)
        discount = (1 + discount_rate) ** grid[1:]
        out["clv"] = margin * out["expected_spend"].to_numpy() * (per_step / discount[:, None]).sum(axis=0)
        corr = np.corrcoef(x[x > 0], m[x > 0])[0, 1] if (x > 0).sum() > 2 else np.nan
        if np.isfinite(corr) and abs(corr) > 0.3:
            notes.append(
                f"spend and frequency are correlated (r = {corr:.2f}) among repeat customers: the Gamma-Gamma "
                "model assumes they are independent, so treat CLV as approximate"
            )
    else:
        notes.append("no spend column: only the BG/NBD purchase model was fitted (no CLV in money)")
    if bg.common_dropout_:
        notes.append(
            f"drop-out does not vary detectably between customers: BG/NBD fitted with one drop-out "
            f"probability after each purchase, p = {bg.p_:.3f} (its limit as a and b grow together)"
        )
    unit_days = _UNIT_DAYS[time_unit]
    warnings = [
        w
        for w in (
            short_history(
                timedelta(days=float(np.max(age, initial=0.0)) * unit_days), CLV_MIN_HISTORY_DAYS, "CLV"
            ),
            degenerate_bgnbd(bg.params_, out["p_alive"].to_numpy()),
        )
        if w is not None
    ]
    return CLVResult(
        warnings=tuple(warnings),
        bgnbd={**bg.params_, "log_likelihood": bg.log_likelihood_, "customers": bg.n_customers_},
        gamma_gamma=gg_params,
        time_unit=time_unit,
        horizon=horizon,
        discount_rate=float(discount_rate),
        margin=float(margin),
        customers=out,
        notes=tuple(notes),
    )
