"""Every SQL statement of the deliver package, as keyword-only functions over a `Db`.

The same SQL runs on DuckDB and PostgreSQL (``?`` placeholders, ``ON CONFLICT``, ``RETURNING``);
where they differ (row locks), the function says so. Times are naive UTC.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow as pa

from cartlift.deliver._tables import CUSTOMERS, DELIVER_TABLES, MESSAGES, Db, create_tables

__all__ = [
    "OUTCOME_COLUMNS",
    "MessageRow",
    "best_sellers",
    "cart_contents",
    "cart_message",
    "claim_due",
    "count_sent_since",
    "coupon_state",
    "coupons_by_code",
    "create",
    "customer",
    "customers_by_id",
    "holdout_phase",
    "insert_coupons",
    "issue_coupons",
    "last_purchases",
    "message",
    "new_id",
    "pending_carts",
    "quarantine_contacts",
    "recent_sends",
    "record_event",
    "record_outcomes",
    "redeem_coupon",
    "release_stale",
    "same_contact",
    "schedule_decisions",
    "secret",
    "sent_messages",
    "status_counts",
    "truth_reactions",
    "unsubscribe",
    "upsert_customers",
    "utcnow",
]

MessageRow = dict[str, Any]
_CONTACT_FIELDS: Final = [c for c in CUSTOMERS if c not in ("updated_at", "load_id")]
_MESSAGE_COLUMNS: Final = list(MESSAGES)


def utcnow() -> datetime:
    """Now, as the naive UTC time every deliver table stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    """A random id (hex UUID)."""
    return uuid.uuid4().hex


def create(db: Db) -> None:
    """The deliver tables, and the ``consents`` table the act package reads."""
    create_tables(db, names=(*DELIVER_TABLES, "consents", "rec_impressions"))


# -- customers ------------------------------------------------------------------------------------
def same_contact(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two customer rows say the same (load bookkeeping aside)."""
    return all(a.get(c) == b.get(c) for c in _CONTACT_FIELDS)


def customers_by_id(db: Db, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Stored customers among ``ids``."""
    out: dict[str, dict[str, Any]] = {}
    cols = ", ".join(CUSTOMERS)
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        marks = ", ".join("?" for _ in chunk)
        for r in db.rows(f"SELECT {cols} FROM customers WHERE user_id IN ({marks})", chunk):
            row = dict(zip(CUSTOMERS, r, strict=True))
            out[str(row["user_id"])] = row
    return out


def upsert_customers(db: Db, rows: Sequence[dict[str, Any]], *, now: datetime, load_id: str) -> None:
    """Insert or replace customers, and their effective consents in ``consents`` (what the act rules read).

    A consent counts when it was given, the address is there and the customer has not unsubscribed.
    """
    if not rows:
        return
    cols = list(CUSTOMERS)
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "user_id")
    db.insert(
        "customers",
        cols,
        [[*(r[c] for c in _CONTACT_FIELDS), now, load_id] for r in rows],
        on_conflict=f"ON CONFLICT (user_id) DO UPDATE SET {sets}",
    )
    _sync_consents(db, [r["user_id"] for r in rows])


def _sync_consents(db: Db, ids: Sequence[str]) -> None:
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        marks = ", ".join("?" for _ in chunk)
        db.execute(f"DELETE FROM consents WHERE user_id IN ({marks})", chunk)
        db.execute(
            "INSERT INTO consents (user_id, email, sms) SELECT user_id, "
            "email_consent AND email IS NOT NULL AND unsubscribed_at IS NULL, "
            "sms_consent AND phone IS NOT NULL AND unsubscribed_at IS NULL "
            f"FROM customers WHERE user_id IN ({marks})",
            chunk,
        )


def quarantine_contacts(
    db: Db, rejects: Sequence[tuple[int, str | None, str, str]], *, source: str, load_id: str, now: datetime
) -> int:
    """Keep rejected records ``(row_number, user_id, raw JSON, reason)``; one already kept from this source is kept once."""
    fresh = [
        r
        for r in rejects
        if not db.rows(
            "SELECT 1 FROM contact_quarantine WHERE source = ? AND raw = ? LIMIT 1", [source, r[2]]
        )
    ]
    db.insert(
        "contact_quarantine",
        ["load_id", "source", "row_number", "user_id", "raw", "reason", "quarantined_at"],
        [[load_id, source, n, user, raw, reason, now] for n, user, raw, reason in fresh],
    )
    return len(fresh)


def unsubscribe(db: Db, *, user_id: str, now: datetime) -> bool:
    """Withdraw every consent of a customer (one-click unsubscribe); False when no such customer."""
    with db.transaction():
        changed = db.execute(
            "UPDATE customers SET unsubscribed_at = coalesce(unsubscribed_at, ?), email_consent = false, "
            "sms_consent = false, updated_at = ? WHERE user_id = ?",
            [now, now, user_id],
        )
        _sync_consents(db, [user_id])
    return changed > 0


# -- scheduling ------------------------------------------------------------------------------------
def pending_carts(db: Db) -> list[tuple[str, str, bool | None]]:
    """``(decision_id, cart_id, recorded held_out or None)`` of decisions that send a message and have no outbox row."""
    tables = db.tables()
    if "decisions" not in tables:
        return []
    recorded = "holdout_assignments" in tables
    rows = db.rows(
        f"SELECT d.decision_id, d.cart_id, {'a.held_out' if recorded else 'NULL'} FROM decisions d "
        + ("LEFT JOIN holdout_assignments a ON a.cart_id = d.cart_id " if recorded else "")
        + "WHERE d.channel IN ('email', 'sms') "
        "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.decision_id = d.decision_id)",
    )
    return [(str(d), str(c), None if h is None else bool(h)) for d, c, h in rows]


def holdout_phase(db: Db) -> tuple[int, float, str] | None:
    """The holdout phase in force ``(phase, share, salt)``, or None when the store never set one."""
    if "holdout_phases" not in db.tables():
        return None
    rows = db.rows("SELECT phase, share, salt FROM holdout_phases ORDER BY phase DESC LIMIT 1")
    return (int(rows[0][0]), float(rows[0][1]), str(rows[0][2])) if rows else None


HELD_OUT_REASON: Final = "held out: the cart is in the global holdout, which is never messaged"
TOO_LATE_REASON: Final = "too late: due more than {hours:g} h ago"


def _quiet_due(quiet: tuple[int, int] | None) -> str:
    """SQL for the due time: ``base`` (naive UTC) moved past the quiet hours of ``zone`` (see `after_quiet_hours`).

    The same text runs on DuckDB (ICU) and PostgreSQL: ``(t AT TIME ZONE 'UTC') AT TIME ZONE z`` is
    the local wall time in ``z``, ``(l AT TIME ZONE z) AT TIME ZONE 'UTC'`` takes it back to UTC.
    """
    if quiet is None or quiet[0] == quiet[1]:
        return "base"
    start, end = int(quiet[0]), int(quiet[1])  # validated hours 0..23, safe to write into the SQL
    hour = "extract(hour FROM l)"
    inside = (
        f"({hour} >= {start} AND {hour} < {end})" if start < end else f"({hour} >= {start} OR {hour} < {end})"
    )
    next_day = "0" if start < end else f"(CASE WHEN {hour} < {end} THEN 0 ELSE 1 END)"
    wake = (
        f"((date_trunc('day', l) + {next_day} * INTERVAL '1 day' + {end} * INTERVAL '1 hour') "
        "AT TIME ZONE zone) AT TIME ZONE 'UTC'"
    )
    return f"CASE WHEN {inside} THEN {wake} ELSE base END"


def schedule_decisions(
    db: Db,
    *,
    now: datetime,
    delays: Sequence[tuple[str, float]],
    quiet: tuple[int, int] | None,
    max_age_hours: float,
    held_out: Sequence[str],
) -> dict[str, int]:
    """One outbox row per decision that sends a message and has none yet, in one INSERT ... SELECT.

    Due at the decision's time plus its action's delay (``delays``: action, hours; 1 h for an
    action not listed), moved past the quiet hours of the customer's zone (UTC when unknown).
    Stored as cancelled with the reason: decisions in ``held_out`` (their cart is in the global
    holdout) and those whose send time is more than ``max_age_hours`` before ``now``.

    Returns
    -------
    dict
        ``scheduled``, ``too_late`` and ``held_out``: rows added by this call.
    """
    if "decisions" not in db.tables():
        return {"scheduled": 0, "too_late": 0, "held_out": 0}
    table = ", ".join("(?, ?)" for _ in delays) or "(NULL, NULL)"
    late = TOO_LATE_REASON.format(hours=max_age_hours)
    sql = f"""
INSERT INTO messages (message_id, decision_id, cart_id, user_id, action, channel, coupon_code, decided_at,
                      created_at, due_at, status, last_error, attempts, deferrals, deferred_reason)
SELECT replace(CAST(gen_random_uuid() AS VARCHAR), '-', ''), decision_id, cart_id, user_id, action, channel,
       coupon_code, ts, ?, due_at,
       CASE WHEN held OR base < ? THEN 'cancelled' ELSE 'scheduled' END,
       CASE WHEN held THEN ? WHEN base < ? THEN ? END,
       0, CASE WHEN due_at > base THEN 1 ELSE 0 END, CASE WHEN due_at > base THEN 'quiet hours' END
FROM (
    SELECT *, {_quiet_due(quiet)} AS due_at
    FROM (SELECT *, (base AT TIME ZONE 'UTC') AT TIME ZONE zone AS l FROM (
        SELECT d.decision_id, d.cart_id, d.user_id, d.action, d.channel, d.coupon_code, d.ts,
               coalesce(c.time_zone, 'UTC') AS zone,
               d.decision_id IN (SELECT unnest(CAST(? AS VARCHAR[]))) AS held,
               d.ts + CAST(round(coalesce(a.hours, 1.0) * 3600) AS INTEGER) * INTERVAL '1 second' AS base
        FROM decisions d
        LEFT JOIN customers c ON c.user_id = d.user_id
        LEFT JOIN (VALUES {table}) AS a(action, hours) ON a.action = d.action
        WHERE d.channel IN ('email', 'sms')
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.decision_id = d.decision_id)
    ) p) q
) r
ON CONFLICT DO NOTHING RETURNING status, last_error"""
    too_late = now - timedelta(hours=max_age_hours)
    params = [now, too_late, HELD_OUT_REASON, too_late, late, list(held_out)]
    params += [v for name, hours in delays for v in (name, float(hours))]
    added = db.rows(sql, params)
    return {
        "scheduled": sum(s == "scheduled" for s, _ in added),
        "too_late": sum(e == late for _, e in added),
        "held_out": sum(e == HELD_OUT_REASON for _, e in added),
    }


def issue_coupons(db: Db, *, created_at: datetime, discounts: Sequence[tuple[str, float, float]]) -> int:
    """Issue the coupon of every message added at ``created_at`` that will be sent (a code issued already stays).

    ``discounts``: action, share, amount; an action not listed gives the decision's own discount value.
    """
    table = ", ".join("(?, ?, ?)" for _ in discounts) or "(NULL, NULL, NULL)"
    rows = db.rows(
        "INSERT INTO coupons (code, user_id, cart_id, decision_id, discount_share, discount_amount, created_at, "
        "expires_at) SELECT d.coupon_code, d.user_id, d.cart_id, d.decision_id, coalesce(a.share, 0.0), "
        "CASE WHEN a.action IS NULL THEN coalesce(d.discount_value, 0.0) ELSE a.amount END, d.ts, "
        "coalesce(d.coupon_expires_at, d.ts + INTERVAL '72 hours') "
        "FROM messages m JOIN decisions d ON d.decision_id = m.decision_id "
        f"LEFT JOIN (VALUES {table}) AS a(action, share, amount) ON a.action = d.action "
        "WHERE m.created_at = ? AND m.status = 'scheduled' AND d.coupon_code IS NOT NULL "
        "ON CONFLICT DO NOTHING RETURNING code",
        [*(v for row in discounts for v in row), created_at],
    )
    return len(rows)


def insert_coupons(db: Db, rows: Sequence[dict[str, Any]]) -> None:
    """Issue coupons (a code already issued stays as it is)."""
    cols = [
        "code",
        "user_id",
        "cart_id",
        "decision_id",
        "discount_share",
        "discount_amount",
        "created_at",
        "expires_at",
    ]
    db.insert("coupons", cols, [[r[c] for c in cols] for r in rows], on_conflict="ON CONFLICT DO NOTHING")


# -- the worker ------------------------------------------------------------------------------------
def release_stale(db: Db, *, now: datetime, everything: bool = False) -> int:
    """Give back claims whose lease ran out (a worker died mid-batch); ``everything`` on a single-process store."""
    where = "status = 'sending'" + ("" if everything else " AND lease_until < ?")
    return db.execute(
        f"UPDATE messages SET status = 'scheduled', worker = NULL, lease_until = NULL WHERE {where}",
        [] if everything else [now],
    )


def claim_due(db: Db, *, now: datetime, limit: int, worker: str, lease_until: datetime) -> list[MessageRow]:
    """Claim up to ``limit`` due messages for ``worker`` (status ``sending`` until ``lease_until``).

    On PostgreSQL the candidates are locked with ``FOR UPDATE SKIP LOCKED``, so workers in other
    processes claim disjoint sets; DuckDB has a single writing process.
    """
    lock = " FOR UPDATE SKIP LOCKED" if db.postgres else ""
    rows = db.rows(
        "UPDATE messages SET status = 'sending', worker = ?, lease_until = ? WHERE message_id IN ("
        "SELECT message_id FROM messages WHERE status = 'scheduled' AND due_at <= ? "
        f"ORDER BY due_at, message_id LIMIT ?{lock}) RETURNING {', '.join(_MESSAGE_COLUMNS)}",
        [worker, lease_until, now, int(limit)],
    )
    out = [dict(zip(_MESSAGE_COLUMNS, r, strict=True)) for r in rows]
    return sorted(out, key=lambda m: (m["due_at"], m["message_id"]))


def message(db: Db, message_id: str) -> MessageRow | None:
    """One outbox row."""
    rows = db.rows(f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM messages WHERE message_id = ?", [message_id])
    return dict(zip(_MESSAGE_COLUMNS, rows[0], strict=True)) if rows else None


OUTCOME_COLUMNS: Final = {
    "message_id": pa.string(),
    "status": pa.string(),
    "last_error": pa.string(),
    "provider_id": pa.string(),
    "recipient": pa.string(),
    "sent_at": pa.timestamp("us"),
    "attempts": pa.int32(),
    "deferrals": pa.int32(),
    "deferred_reason": pa.string(),
    "due_at": pa.timestamp("us"),
}
"""One row per handled message: its new status, what to add to its counters, what to set (None keeps the old value)."""

_OUTCOME_SET: Final = (
    "status = {status}, last_error = coalesce({last_error}, messages.last_error), "
    "provider_id = coalesce({provider_id}, messages.provider_id), "
    "recipient = coalesce({recipient}, messages.recipient), sent_at = coalesce({sent_at}, messages.sent_at), "
    "attempts = messages.attempts + {attempts}, deferrals = messages.deferrals + {deferrals}, "
    "deferred_reason = coalesce({deferred_reason}, messages.deferred_reason), "
    "due_at = coalesce({due_at}, messages.due_at), lease_until = NULL, "
    "worker = CASE WHEN {status} = 'scheduled' THEN NULL ELSE messages.worker END"
)
_PG_TYPES: Final = {
    "sent_at": "TIMESTAMP",
    "due_at": "TIMESTAMP",
    "attempts": "INTEGER",
    "deferrals": "INTEGER",
}


def record_outcomes(db: Db, outcomes: Sequence[dict[str, Any]], *, worker: str) -> None:
    """Write the outcomes of claimed messages (rows of `OUTCOME_COLUMNS`) in one statement.

    Only rows still ``sending`` for ``worker`` change: a claim whose lease ran out and that
    another worker took over is that worker's now. Call inside `Db.transaction` to commit them
    together (with the next claim).
    """
    if not outcomes:
        return
    guard = "messages.status = 'sending' AND messages.worker = ?"
    if db.postgres:  # one UPDATE per row, sent by psycopg in one pipeline
        order = re.findall(r"\{(\w+)\}", _OUTCOME_SET)
        sets = _OUTCOME_SET.format(
            **{c: f"CAST(? AS {_PG_TYPES.get(c, 'VARCHAR')})" for c in OUTCOME_COLUMNS}
        )
        db.many(
            f"UPDATE messages SET {sets} WHERE messages.message_id = ? AND {guard}",
            [[o[c] for c in order] + [o["message_id"], worker] for o in outcomes],
        )
        return
    batch = pa.table({c: pa.array([o[c] for o in outcomes], type=t) for c, t in OUTCOME_COLUMNS.items()})
    db.con.register("_outcomes", batch)
    try:
        sets = _OUTCOME_SET.format(**{c: f"u.{c}" for c in OUTCOME_COLUMNS})
        db.execute(
            f"UPDATE messages SET {sets} FROM _outcomes u WHERE messages.message_id = u.message_id AND {guard}",
            [worker],
        )
    finally:
        db.con.unregister("_outcomes")


def recent_sends(db: Db, *, user_ids: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
    """Each customer's send times since ``since``, oldest first (what the frequency cap counts)."""
    out: dict[str, list[datetime]] = {u: [] for u in user_ids}
    for start in range(0, len(user_ids), 1000):
        chunk = list(user_ids[start : start + 1000])
        rows = db.rows(
            f"SELECT user_id, sent_at FROM messages WHERE status = 'sent' AND sent_at >= ? AND user_id IN ({_in(chunk)}) "
            "ORDER BY sent_at",
            [since, *chunk],
        )
        for user, at in rows:
            out[str(user)].append(at)
    return out


def count_sent_since(db: Db, *, since: datetime) -> int:
    """Messages sent since ``since``, store-wide (what the daily budget counts)."""
    return int(db.rows("SELECT count(*) FROM messages WHERE status = 'sent' AND sent_at >= ?", [since])[0][0])


def status_counts(db: Db) -> dict[str, Any]:
    """Messages per status, deferred ones, and the next due time."""
    by = {str(s): int(n) for s, n in db.rows("SELECT status, count(*) FROM messages GROUP BY status")}
    deferred, next_due = db.rows(
        "SELECT count(*) FILTER (WHERE deferrals > 0), min(due_at) FILTER (WHERE status = 'scheduled') FROM messages"
    )[0]
    clicks = int(db.rows("SELECT count(DISTINCT message_id) FROM message_events WHERE kind = 'click'")[0][0])
    return {"by_status": by, "deferred": int(deferred or 0), "next_due": next_due, "clicked": clicks}


# -- what a message shows ----------------------------------------------------------------------------
def customer(db: Db, user_id: str) -> dict[str, Any] | None:
    """One customer row."""
    return customers_by_id(db, [user_id]).get(user_id)


def coupon_state(db: Db, code: str) -> dict[str, Any] | None:
    """A coupon's row."""
    cols = [
        "code",
        "user_id",
        "cart_id",
        "discount_share",
        "discount_amount",
        "expires_at",
        "redeemed_at",
        "order_id",
    ]
    rows = db.rows(f"SELECT {', '.join(cols)} FROM coupons WHERE code = ?", [code])
    return dict(zip(cols, rows[0], strict=True)) if rows else None


def redeem_coupon(db: Db, *, code: str, user_id: str, now: datetime, order_id: str | None) -> bool:
    """Mark a coupon redeemed if it is still unredeemed, unexpired and the customer's; True when this call did it.

    One conditional UPDATE: of two concurrent redemptions exactly one changes the row (PostgreSQL
    re-checks the condition after the row lock; DuckDB aborts the second transaction on the conflict).
    """
    return (
        db.execute(
            "UPDATE coupons SET redeemed_at = ?, order_id = ? "
            "WHERE code = ? AND user_id = ? AND redeemed_at IS NULL AND expires_at > ?",
            [now, order_id, code, user_id, now],
        )
        == 1
    )


def record_event(db: Db, *, message_id: str, user_id: str, kind: str, now: datetime) -> None:
    """A click on a message's link, or an unsubscribe."""
    db.execute(
        "INSERT INTO message_events (message_id, user_id, kind, ts) VALUES (?, ?, ?, ?)",
        [message_id, user_id, kind, now],
    )


def secret(db: Db, name: str = "links") -> bytes:
    """The store's signing secret (made once, kept in the store, so the CLI and the service share it)."""
    rows = db.rows("SELECT secret FROM deliver_keys WHERE name = ?", [name])
    if not rows:
        db.execute(
            "INSERT INTO deliver_keys (name, secret) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [name, secrets.token_hex(32)],
        )
        rows = db.rows("SELECT secret FROM deliver_keys WHERE name = ?", [name])
    return bytes.fromhex(str(rows[0][0]))


def cart_message(db: Db, *, cart_id: str) -> MessageRow | None:
    """The outbox row of a cart, or a preview row from its decision or its events (not stored)."""
    rows = db.rows(f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM messages WHERE cart_id = ? LIMIT 1", [cart_id])
    if rows:
        return dict(zip(_MESSAGE_COLUMNS, rows[0], strict=True))
    preview: MessageRow = {"message_id": "preview", "cart_id": cart_id, "attempts": 0}
    if "decisions" in db.tables():
        got = db.rows(
            "SELECT user_id, action, channel, coupon_code, ts FROM decisions WHERE cart_id = ? LIMIT 1",
            [cart_id],
        )
        if got and got[0][2] in ("email", "sms"):
            user, action, channel, code, ts = got[0]
            return {
                **preview,
                "user_id": user,
                "action": action,
                "channel": channel,
                "coupon_code": code,
                "decided_at": ts,
            }
    owner = db.rows(
        "SELECT user_id, max(ts) FROM events WHERE session_id = ? GROUP BY user_id LIMIT 1", [cart_id]
    )
    if not owner:
        return None
    return {
        **preview,
        "user_id": owner[0][0],
        "action": "reminder_email_1h",
        "channel": "email",
        "coupon_code": None,
        "decided_at": owner[0][1],
    }


def truth_reactions(
    db: Db, *, cart_ids: Sequence[str], action_columns: Sequence[str]
) -> dict[str, dict[str, float]]:
    """The simulator's true purchase probability of each cart under each action (``truth_carts``)."""
    if "truth_carts" not in db.tables() or not cart_ids:
        return {}
    cols = ", ".join(action_columns)
    out: dict[str, dict[str, float]] = {}
    for start in range(0, len(cart_ids), 1000):
        chunk = list(cart_ids[start : start + 1000])
        marks = ", ".join("?" for _ in chunk)
        for row in db.rows(f"SELECT cart_id, {cols} FROM truth_carts WHERE cart_id IN ({marks})", chunk):
            out[str(row[0])] = dict(zip(action_columns, map(float, row[1:]), strict=True))
    return out


def sent_messages(db: Db) -> list[MessageRow]:
    """Every sent message, in the order they went out."""
    rows = db.rows(
        f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM messages WHERE status = 'sent' ORDER BY sent_at, cart_id, decision_id"
    )
    return [dict(zip(_MESSAGE_COLUMNS, r, strict=True)) for r in rows]


# -- the same facts for a whole claimed batch (one query each instead of one per message) -----------------
def _in(ids: Sequence[str]) -> str:
    return ", ".join("?" for _ in ids)


def last_purchases(db: Db, *, user_ids: Sequence[str], now: datetime) -> dict[str, datetime]:
    """Each customer's latest purchase at or before ``now``."""
    if not user_ids:
        return {}
    rows = db.rows(
        f"SELECT user_id, max(ts) FROM events WHERE event_type = 'purchase' AND ts <= ? AND user_id IN ({_in(user_ids)}) "
        "GROUP BY user_id",
        [now, *user_ids],
    )
    return {str(u): t for u, t in rows}


def cart_contents(db: Db, *, cart_ids: Sequence[str], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The lines still in each cart at ``now``: product, title, category, price, quantity."""
    if not cart_ids:
        return {}
    rows = db.rows(
        "SELECT e.session_id, e.product_id, max(p.title), max(p.category), coalesce(max(p.price), max(e.price)), "
        "sum(CASE WHEN e.event_type = 'cart_add' THEN coalesce(e.quantity, 1) ELSE -coalesce(e.quantity, 1) END) "
        "FROM events e LEFT JOIN products p ON p.product_id = e.product_id "
        f"WHERE e.session_id IN ({_in(cart_ids)}) AND e.ts <= ? AND e.event_type IN ('cart_add', 'cart_remove') "
        "AND e.product_id IS NOT NULL GROUP BY e.session_id, e.product_id ORDER BY e.session_id, e.product_id",
        [*cart_ids, now],
    )
    out: dict[str, list[dict[str, Any]]] = {c: [] for c in cart_ids}
    for cart, pid, title, category, price, q in rows:
        if q and q > 0:
            out[str(cart)].append({"product_id": str(pid), "title": title or str(pid), "category": category,
                                   "price": float(price or 0.0), "quantity": int(q)})  # fmt: skip
    return out


def best_sellers(db: Db, *, k: int) -> dict[str | None, list[dict[str, Any]]]:
    """The ``k`` most bought products of every category (what a message recommends beside the cart)."""
    rows = db.rows(
        "SELECT category, product_id, title, price FROM (SELECT p.category, p.product_id, p.title, p.price, "
        "row_number() OVER (PARTITION BY p.category ORDER BY count(*) DESC, p.product_id) AS r "
        "FROM events e JOIN products p ON p.product_id = e.product_id WHERE e.event_type = 'purchase' "
        "GROUP BY p.category, p.product_id, p.title, p.price) t WHERE r <= ? ORDER BY category, r",
        [int(k)],
    )
    out: dict[str | None, list[dict[str, Any]]] = {}
    for category, pid, title, price in rows:
        out.setdefault(category, []).append(
            {"product_id": str(pid), "title": title or str(pid), "price": float(price or 0.0)}
        )
    return out


def products_by_id(db: Db, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Catalog rows (product, title, category, price) of ``ids`` that the catalog holds."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 1000):
        part = list(ids[start : start + 1000])
        rows = db.rows(
            f"SELECT product_id, title, category, price FROM products WHERE product_id IN ({_in(part)})", part
        )
        for pid, title, category, price in rows:
            out[str(pid)] = {"product_id": str(pid), "title": title or str(pid), "category": category,
                             "price": float(price or 0.0)}  # fmt: skip
    return out


def coupons_by_code(db: Db, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Coupon rows by code."""
    if not codes:
        return {}
    cols = [
        "code",
        "user_id",
        "cart_id",
        "discount_share",
        "discount_amount",
        "expires_at",
        "redeemed_at",
        "order_id",
    ]
    rows = db.rows(f"SELECT {', '.join(cols)} FROM coupons WHERE code IN ({_in(codes)})", list(codes))
    return {str(r[0]): dict(zip(cols, r, strict=True)) for r in rows}
