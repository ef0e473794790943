"""The dashboard's store numbers: carts and money by the analytics package's one definition.

Carts, abandonment, orders and revenue follow `cartlift.analytics.store_metrics` (the numbers of
``cartlift summary``). On the DuckDB store the funnel is the CLI's default funnel (ordered steps
within a session); on PostgreSQL, where the analytics package does not run, it counts sessions
reaching each step in any order and says so (``"ordered": false``). A decision converted when its
cart's session has a purchase at or after it (the act package's ``decision_outcomes`` has the full
definition, with windows and coupons). Everything runs on the storage's writer thread.
"""

from __future__ import annotations

from typing import Any

from cartlift.analytics import DEFAULT_STEPS, funnel, store_metrics
from cartlift.store import EventStore, Storage

__all__ = ["overview"]


def _funnel(storage: Storage, ctx: Any) -> list[dict[str, Any]]:
    if isinstance(ctx, EventStore):  # the DuckDB store: the CLI's funnel, counted the CLI's way
        if not int(ctx.con.execute("SELECT count(*) FROM events").fetchall()[0][0]):
            return []
        return [{"step": s.name, "sessions": int(s.count), "ordered": True} for s in funnel(ctx).steps]
    counts = ", ".join(f"count(DISTINCT session_id) FILTER (WHERE event_type = '{t}')" for t in DEFAULT_STEPS)
    row = storage.rows(ctx, f"SELECT {counts} FROM events")[0]
    return [
        {"step": t, "sessions": int(n), "ordered": False} for t, n in zip(DEFAULT_STEPS, row, strict=True)
    ]


def _messages(storage: Storage, ctx: Any) -> dict[str, int] | None:
    """The outbox's counts (due, sent, failed, deferred), or None when the store has no outbox yet."""
    exists = storage.rows(
        ctx,
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_name = 'messages' AND table_schema = current_schema()",
    )
    if not exists[0][0]:
        return None
    due, sent, failed, deferred = storage.rows(
        ctx,
        """SELECT count(*) FILTER (WHERE status = 'scheduled' AND due_at <= CURRENT_TIMESTAMP),
                  count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'dead'),
                  count(*) FILTER (WHERE status = 'scheduled' AND deferrals > 0)
           FROM messages""",
    )[0]
    return {"due": int(due), "sent": int(sent), "failed": int(failed), "deferred": int(deferred)}


def _overview(storage: Storage, ctx: Any) -> dict[str, Any]:
    metrics = store_metrics(lambda sql: storage.rows(ctx, sql))
    events, sessions = storage.rows(ctx, "SELECT count(*), count(DISTINCT session_id) FROM events")[0]
    # bought as the definitions' recovered cart is: by the same customer (or in the cart's own
    # session) within the recovery window after the decision; an abandoned cart is mostly bought
    # in a later session, which a same-session count never sees
    window = f"INTERVAL '{round(metrics.recovery_hours * 3600)} seconds'"
    decisions = storage.rows(
        ctx,
        f"""SELECT action, count(*), avg(propensity),
                  count(*) FILTER (WHERE EXISTS (
                      SELECT 1 FROM events e
                      WHERE e.event_type = 'purchase' AND e.ts >= d.ts AND e.ts < d.ts + {window}
                        AND (e.session_id = d.cart_id OR e.user_id = d.user_id)))
           FROM decisions d GROUP BY action ORDER BY action""",
    )
    return {
        "events": int(events),
        "funnel": _funnel(storage, ctx),
        "sessions": int(sessions),
        "abandonment": {
            "carts": metrics.carts,
            "abandoned": metrics.abandoned_carts,
            "rate": metrics.abandonment_rate,
            "abandoned_value": metrics.abandoned_value,
        },
        "store": metrics.to_dict(),
        "currency": metrics.currency,
        "messages": _messages(storage, ctx),
        "decisions": [
            {"action": str(a), "count": int(n), "mean_propensity": float(p), "converted": int(c)}
            for a, n, p, c in decisions
        ],
    }


async def overview(storage: Storage) -> dict[str, Any]:
    """Funnel, carts, abandonment, orders and revenue, the outbox, decisions and their outcomes."""
    result: dict[str, Any] = await storage.run(lambda ctx: _overview(storage, ctx))
    return result
