"""What comes back from customers and checkouts: link clicks, unsubscribes, coupon checks.

The service's routes call these; each is one short transaction on the store, whose deliver tables
exist (`cartlift.deliver.create_tables`, run by the service at start).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from cartlift.deliver import _repo
from cartlift.deliver._links import read_token
from cartlift.deliver._tables import Db

__all__ = ["click", "unsubscribe_link", "validate_coupon"]


def click(db: Db, token: str, *, now: datetime) -> dict[str, Any] | None:
    """Count a click on a restore link; the message's cart and customer, or None for a bad token."""
    mid = read_token(_repo.secret(db), "restore", token)
    msg = _repo.message(db, mid) if mid else None
    if msg is None:
        return None
    _repo.record_event(
        db, message_id=str(msg["message_id"]), user_id=str(msg["user_id"]), kind="click", now=now
    )
    return {"message_id": msg["message_id"], "cart_id": msg["cart_id"], "user_id": msg["user_id"]}


def unsubscribe_link(db: Db, token: str, *, now: datetime, confirm: bool) -> dict[str, Any] | None:
    """Resolve an unsubscribe link; with ``confirm`` withdraw the customer's consents. None for a bad token."""
    mid = read_token(_repo.secret(db), "unsubscribe", token)
    msg = _repo.message(db, mid) if mid else None
    if msg is None:
        return None
    user = str(msg["user_id"])
    if confirm:
        _repo.unsubscribe(db, user_id=user, now=now)
        _repo.record_event(db, message_id=str(msg["message_id"]), user_id=user, kind="unsubscribe", now=now)
    customer = _repo.customer(db, user) or {}
    return {"message_id": msg["message_id"], "unsubscribed": customer.get("unsubscribed_at") is not None}


def validate_coupon(
    db: Db, *, code: str, user_id: str, now: datetime, redeem: bool = False, order_id: str | None = None
) -> dict[str, Any]:
    """Whether ``code`` is valid for ``user_id`` now; with ``redeem``, use it up (exactly one caller wins).

    Returns
    -------
    dict
        ``valid`` (bool), ``reason`` (None, ``unknown``, ``expired``, ``used``, ``other_customer``),
        ``redeemed`` (this call used it), and for a known code ``discount_share``,
        ``discount_amount`` and ``expires_at``.
    """
    state = _repo.coupon_state(db, code)
    if state is None:
        return {"code": code, "valid": False, "reason": "unknown", "redeemed": False}
    facts = {
        "code": code,
        "discount_share": state["discount_share"],
        "discount_amount": state["discount_amount"],
        "expires_at": state["expires_at"],
    }

    def refused(reason: str) -> dict[str, Any]:
        return {**facts, "valid": False, "reason": reason, "redeemed": False}

    if state["user_id"] != user_id:
        return refused("other_customer")
    if state["redeemed_at"] is not None:
        return refused("used")
    if state["expires_at"] <= now:
        return refused("expired")
    if not redeem:
        return {**facts, "valid": True, "reason": None, "redeemed": False}
    try:
        won = _repo.redeem_coupon(db, code=code, user_id=user_id, now=now, order_id=order_id)
    except duckdb.TransactionException:  # DuckDB aborts the loser of a write-write conflict
        won = False
    return {**facts, "valid": won, "reason": None if won else "used", "redeemed": won}
