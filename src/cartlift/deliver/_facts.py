"""What the worker needs to know about a claimed batch of messages, read in a few queries.

Per batch: the customers, their latest purchase, what is still in each cart, the coupons; per
run: the best sellers per category (the recommendations beside the cart) and the signing secret.
Reading these once per batch instead of once per message is most of the worker's speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cartlift.deliver import _repo
from cartlift.deliver._tables import Db

__all__ = ["Facts", "cancel_reason", "gather", "recommendations"]


@dataclass(frozen=True)
class Facts:
    """The store's state for a batch of messages at one moment."""

    customers: dict[str, dict[str, Any]]
    last_purchase: dict[str, datetime]
    carts: dict[str, list[dict[str, Any]]]
    coupons: dict[str, dict[str, Any]]
    best: dict[str | None, list[dict[str, Any]]]
    secret: bytes


def gather(
    db: Db,
    msgs: Sequence[dict[str, Any]],
    *,
    now: datetime,
    best: dict[str | None, list[dict[str, Any]]] | None = None,
    secret: bytes | None = None,
) -> Facts:
    """The facts of ``msgs`` at ``now`` (``best`` and ``secret`` reused when given)."""
    users = sorted({str(m["user_id"]) for m in msgs})
    carts = sorted({str(m["cart_id"]) for m in msgs})
    codes = sorted({str(m["coupon_code"]) for m in msgs if m.get("coupon_code")})
    return Facts(
        customers=_repo.customers_by_id(db, users),
        last_purchase=_repo.last_purchases(db, user_ids=users, now=now),
        carts=_repo.cart_contents(db, cart_ids=carts, now=now),
        coupons=_repo.coupons_by_code(db, codes),
        best=best if best is not None else _repo.best_sellers(db, k=6),
        secret=secret if secret is not None else _repo.secret(db),
    )


def cancel_reason(msg: dict[str, Any], facts: Facts) -> str | None:
    """Why a message must not go out any more, or None: cart bought or emptied, consent gone."""
    user = str(msg["user_id"])
    bought = facts.last_purchase.get(user)
    if bought is not None and bought >= msg["decided_at"]:
        return "the customer bought after the decision"
    if not facts.carts.get(str(msg["cart_id"])):
        return "the cart was emptied"
    customer = facts.customers.get(user)
    if customer is None:
        return "no contact record for the customer"
    if customer["unsubscribed_at"] is not None:
        return "the customer unsubscribed"
    if msg["channel"] == "email" and not (customer["email_consent"] and customer["email"]):
        return "no e-mail consent"
    if msg["channel"] == "sms" and not (customer["sms_consent"] and customer["phone"]):
        return "no SMS consent"
    return None


def recommendations(items: Sequence[dict[str, Any]], facts: Facts, k: int = 3) -> list[dict[str, Any]]:
    """The best sellers of the cart's categories that are not in the cart, best first."""
    inside = {i["product_id"] for i in items}
    seen: set[str] = set()
    pool: list[dict[str, Any]] = []
    for category in dict.fromkeys(i.get("category") for i in items):
        for item in facts.best.get(category, []):
            if item["product_id"] not in inside and item["product_id"] not in seen:
                seen.add(item["product_id"])
                pool.append(dict(item))
    return pool[:k]
