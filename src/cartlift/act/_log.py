"""The decision log: every action taken, with its propensity and context, and outcomes joined from events.

``decisions`` holds one row per decision (written in batches, idempotent by ``decision_id``).
Outcomes are never typed in: the view ``decision_outcomes`` finds, for each decision, the
customer's purchases of the cart's products after the decision and within its window::

    purchased   = a purchase event by the same user of a product that was added to the cart,
                  with decision ts < purchase ts <= ts + window_hours
    redeemed    = purchased, a coupon was issued, and the first purchase came before it expired
    profit      = purchased * (margin - redeemed * discount_value) - cost

Beside that cart-window outcome, each decision carries what attribution credited to its message
(`cartlift.act.attribute`, the ``attributions`` table): ``attributed_orders``,
``attributed_revenue`` and ``attributed_profit`` (0 until `attribute` has run).

A decision whose window has not closed yet (relative to the newest event in the store) is not
``matured`` and is left out of training until it is, even when it already has a purchase:
keeping early buyers while dropping the still-undecided would bias the purchase rate upward.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cartlift.act._attribution import decision_credit_sql
from cartlift.errors import DataError
from cartlift.store import DECISION_COLUMNS, EventStore

__all__ = [
    "DECISION_COLUMNS",
    "contexts_from_log",
    "create_decision_tables",
    "decision_outcomes",
    "log_decisions",
]

_CREDIT, _ATTRIBUTED_PROFIT = decision_credit_sql("attributions")

_OUTCOMES_VIEW = f"""
CREATE OR REPLACE VIEW decision_outcomes AS
WITH {_CREDIT},
lines AS (SELECT DISTINCT session_id, product_id FROM events
               WHERE event_type = 'cart_add' AND product_id IS NOT NULL),
bought AS (
    SELECT d.decision_id, min(p.ts) AS first_purchase_at, sum(p.price * p.quantity) AS revenue
    FROM decisions d
    JOIN lines l ON l.session_id = d.cart_id
    JOIN events p ON p.event_type = 'purchase' AND p.user_id = d.user_id AND p.product_id = l.product_id
                 AND p.ts > d.ts
                 AND p.ts <= d.ts + to_microseconds(CAST(d.window_hours * 3600000000 AS BIGINT))
    GROUP BY d.decision_id
),
latest AS (SELECT max(ts) AS now FROM events)
SELECT d.*, b.first_purchase_at, coalesce(b.revenue, 0.0) AS revenue,
       b.decision_id IS NOT NULL AS purchased,
       (b.decision_id IS NOT NULL AND d.coupon_code IS NOT NULL
        AND b.first_purchase_at <= d.coupon_expires_at) AS redeemed,
       CASE WHEN b.decision_id IS NOT NULL
            THEN d.margin - CASE WHEN d.coupon_code IS NOT NULL AND b.first_purchase_at <= d.coupon_expires_at
                                 THEN d.discount_value ELSE 0 END
            ELSE 0 END - coalesce(d.cost, 0) AS profit,
       d.ts + to_microseconds(CAST(d.window_hours * 3600000000 AS BIGINT)) <= latest.now AS matured,
       coalesce(cr.orders, 0) AS attributed_orders, coalesce(cr.revenue, 0.0) AS attributed_revenue,
       {_ATTRIBUTED_PROFIT} AS attributed_profit
FROM decisions d LEFT JOIN bought b USING (decision_id) CROSS JOIN latest
LEFT JOIN credit cr ON cr.decision_id = d.decision_id
"""


def create_decision_tables(store: EventStore) -> None:
    """Create ``decisions`` (if missing; declared in `cartlift.store.TABLES`) and (re)create the ``decision_outcomes`` view."""
    store.create_tables(("decisions", "attributions"))
    store.con.execute(_OUTCOMES_VIEW)


def _context_json(context: pd.DataFrame) -> list[str]:
    # one JSON object per row; NaN becomes null so the snapshot stays valid JSON
    clean = context.astype(object).where(context.notna(), None)
    return [json.dumps(row, default=_scalar) for row in clean.to_dict("records")]


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def log_decisions(store: EventStore, decisions: pd.DataFrame, context: pd.DataFrame | None = None) -> int:
    """Append decisions to the store's ``decisions`` table in one batch; returns rows added.

    Parameters
    ----------
    store : EventStore
    decisions : DataFrame
        Columns of `DECISION_COLUMNS` (``context`` may be left out and given separately).
        Decision ids already in the table are skipped, so logging twice changes nothing.
    context : DataFrame, optional
        The features each decision saw, one row per decision; stored as JSON text.
    """
    create_decision_tables(store)
    frame = decisions.copy()
    if context is not None:
        if len(context) != len(frame):
            raise DataError(
                f"context has {len(context)} rows for {len(frame)} decisions; give one per decision."
            )
        frame["context"] = _context_json(context.reset_index(drop=True))
    missing = [c for c, kind in DECISION_COLUMNS.items() if "NOT NULL" in kind and c not in frame.columns]
    if missing:
        raise DataError(f"decisions lack required column(s): {', '.join(missing)}.")
    p = frame["propensity"].to_numpy(dtype=float)
    if not ((p > 0) & (p <= 1)).all():
        raise DataError(
            "Every propensity must be in (0, 1]: a policy must give its action a positive chance."
        )
    for col in DECISION_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    frame = frame[list(DECISION_COLUMNS)]
    before = int(store.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0])
    store.con.register("_act_decisions", frame)
    try:
        store.con.execute(
            "INSERT INTO decisions SELECT DISTINCT ON (decision_id) * FROM _act_decisions "
            "WHERE decision_id NOT IN (SELECT decision_id FROM decisions)"
        )
    finally:
        store.con.unregister("_act_decisions")
    return int(store.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]) - before


def decision_outcomes(
    store: EventStore, *, policies: Sequence[str] | None = None, matured_only: bool = True
) -> pd.DataFrame:
    """Decisions with their outcomes joined from events (see the module docstring), oldest first.

    Parameters
    ----------
    policies : sequence of str, optional
        Only decisions of these policies.
    matured_only : bool
        Leave out decisions whose outcome window is still open.
    """
    create_decision_tables(store)
    where: list[str] = []
    params: list[Any] = []
    if policies is not None:
        where.append(f"policy IN ({', '.join('?' for _ in policies)})")
        params.extend(policies)
    if matured_only:
        where.append("matured")
    sql = "SELECT * FROM decision_outcomes" + (f" WHERE {' AND '.join(where)}" if where else "")
    return store.query(sql + " ORDER BY ts, decision_id", params)


def contexts_from_log(frame: pd.DataFrame) -> pd.DataFrame:
    """The logged context snapshots as a DataFrame (one row per decision, columns from the JSON)."""
    rows = [json.loads(c) if isinstance(c, str) and c else {} for c in frame["context"]]
    return pd.DataFrame(rows, index=frame.index)
