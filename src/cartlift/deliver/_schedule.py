"""From decisions to outbox rows: the due time (delay, then quiet hours in the customer's zone), coupons.

A message is a row in the outbox before it is anything else. `schedule` turns every recent
decision that contacts the customer into one ``messages`` row (the decision id is unique there,
so scheduling twice adds nothing) and issues the decision's coupon into ``coupons``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cartlift.act import ActionCatalog
from cartlift.deliver import _repo
from cartlift.deliver._settings import DeliverSettings
from cartlift.deliver._tables import Db

__all__ = ["after_quiet_hours", "schedule"]

_UTC = ZoneInfo("UTC")


def after_quiet_hours(when: datetime, time_zone: str | None, quiet: tuple[int, int] | None) -> datetime:
    """The first moment at or after ``when`` (naive UTC) outside the quiet hours of the customer's zone.

    Parameters
    ----------
    when : datetime
        Naive UTC.
    time_zone : str or None
        IANA name; None reads the hours in UTC.
    quiet : (start, end) or None
        Local hours: ``(21, 8)`` is from 21:00 to 08:00 the next morning.
    """
    if quiet is None or quiet[0] == quiet[1]:
        return when
    zone = ZoneInfo(time_zone) if time_zone else _UTC
    local = when.replace(tzinfo=_UTC).astimezone(zone)
    start, end = quiet
    hour = local.hour
    inside = (start <= hour < end) if start < end else (hour >= start or hour < end)
    if not inside:
        return when
    day = local.date() if hour < end else local.date() + timedelta(days=1)
    wake = datetime(day.year, day.month, day.day, end, tzinfo=zone)
    return wake.astimezone(_UTC).replace(tzinfo=None)


def schedule(
    db: Db, *, settings: DeliverSettings, now: datetime, catalog: ActionCatalog | None = None
) -> dict[str, int]:
    """Add an outbox row for every recent decision that sends a message and has none yet.

    Parameters
    ----------
    settings : DeliverSettings
        Quiet hours and the age beyond which a decision is no longer sent (``max_age_hours``).
    now : datetime
        Naive UTC (the demo passes its simulated clock).
    catalog : ActionCatalog, optional
        Delays and discounts of the actions (default: the standard actions).

    Returns
    -------
    dict
        ``scheduled`` (new rows to send), ``coupons`` (new codes) and ``too_late`` (decisions whose
        send time is more than ``max_age_hours`` past: stored as cancelled, with that reason).
    """
    catalog = catalog if catalog is not None else ActionCatalog()
    _repo.create(db)
    pending = _repo.unscheduled_decisions(db)
    if not pending:
        return {"scheduled": 0, "coupons": 0, "too_late": 0}
    too_late = now - timedelta(hours=settings.max_age_hours)
    zones = _repo.time_zones(db, sorted({str(d["user_id"]) for d in pending}))
    known = set(catalog.names)
    messages: list[dict[str, Any]] = []
    coupons: list[dict[str, Any]] = []
    for d in pending:
        action = catalog.get(d["action"]) if d["action"] in known else None
        delay = timedelta(hours=action.delay_hours if action is not None else 1.0)
        due = after_quiet_hours(d["ts"] + delay, zones.get(str(d["user_id"])), settings.quiet_hours)
        late = d["ts"] + delay < too_late
        messages.append(
            {
                "message_id": _repo.new_id(),
                "decision_id": d["decision_id"],
                "cart_id": d["cart_id"],
                "user_id": d["user_id"],
                "action": d["action"],
                "channel": d["channel"],
                "coupon_code": d["coupon_code"],
                "decided_at": d["ts"],
                "created_at": now,
                "due_at": due,
                # a decision older than max_age_hours is recorded, visibly, as too late to send
                "status": "cancelled" if late else "scheduled",
                "last_error": f"too late: due more than {settings.max_age_hours:g} h ago" if late else None,
                "attempts": 0,
                "deferrals": 1 if due > d["ts"] + delay else 0,
                "deferred_reason": "quiet hours" if due > d["ts"] + delay else None,
            }
        )
        if d["coupon_code"] and not late:
            coupons.append(
                {
                    "code": d["coupon_code"],
                    "user_id": d["user_id"],
                    "cart_id": d["cart_id"],
                    "decision_id": d["decision_id"],
                    "discount_share": action.discount_share if action is not None else 0.0,
                    "discount_amount": action.discount_amount
                    if action is not None
                    else float(d["discount_value"] or 0),
                    "created_at": d["ts"],
                    "expires_at": d["coupon_expires_at"] or d["ts"] + timedelta(hours=72),
                }
            )
    with db.transaction():
        added = _repo.insert_messages(db, messages)
        _repo.insert_coupons(db, coupons)
    late_n = sum(m["status"] == "cancelled" for m in messages)
    return {"scheduled": added - late_n, "coupons": len(coupons), "too_late": late_n}
