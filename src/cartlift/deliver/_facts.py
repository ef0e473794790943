"""What the worker needs to know about a claimed batch of messages, read in a few queries.

Per batch: the customers, their latest purchase, what is still in each cart, the coupons, and the
products each cart's message suggests; per run: the best sellers per category and the signing
secret. Reading these once per batch instead of once per message is most of the worker's speed.

The suggested products come from the recommender the service serves (`cartlift.recommend.
served_recommender`: the model that evaluated best on the store, unless ``CARTLIFT_SERVE_RECOMMENDER``
names another), asked for the whole batch of carts at once and never suggesting what is in the
cart. Where no recommender is trained, or it knows none of a cart's products, the message falls
back to the best sellers of the cart's categories; each suggested product says which it came from
(``source``: ``recommender`` or ``best-sellers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cartlift.deliver import _repo
from cartlift.deliver._tables import Db
from cartlift.recommend import ServedRecommender

SUGGESTED: int = 6
"""Products asked of the recommender per cart (a message shows the first 3 the catalog prices)."""

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
    suggested: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per cart: the served recommender's products for it (empty: best sellers instead)."""
    recommender: dict[str, str] | None = None
    """``{"model", "version"}`` of the recommender the suggestions came from; None: none trained."""


def gather(
    db: Db,
    msgs: Sequence[dict[str, Any]],
    *,
    now: datetime,
    best: dict[str | None, list[dict[str, Any]]] | None = None,
    secret: bytes | None = None,
    recommender: ServedRecommender | None = None,
) -> Facts:
    """The facts of ``msgs`` at ``now`` (``best`` and ``secret`` reused when given; ``recommender``:
    the served model whose products the messages suggest)."""
    users = sorted({str(m["user_id"]) for m in msgs})
    carts = sorted({str(m["cart_id"]) for m in msgs})
    codes = sorted({str(m["coupon_code"]) for m in msgs if m.get("coupon_code")})
    contents = _repo.cart_contents(db, cart_ids=carts, now=now)
    return Facts(
        customers=_repo.customers_by_id(db, users),
        last_purchase=_repo.last_purchases(db, user_ids=users, now=now),
        carts=contents,
        coupons=_repo.coupons_by_code(db, codes),
        best=best if best is not None else _repo.best_sellers(db, k=6),
        secret=secret if secret is not None else _repo.secret(db),
        suggested=_suggest(db, recommender, contents),
        recommender=None
        if recommender is None
        else {"model": recommender.name, "version": recommender.version},
    )


def _suggest(
    db: Db, recommender: ServedRecommender | None, contents: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """Each cart's products from the served recommender (one call for the batch), priced from the catalog."""
    carts = [c for c, items in contents.items() if items]
    if recommender is None or not carts:
        return {}
    contexts = [[i["product_id"] for i in contents[c]] for c in carts]
    lists = recommender.model.recommend_for_items(contexts, SUGGESTED, exclude_given=True).to_lists()
    catalog = _repo.products_by_id(db, sorted({str(p) for ids in lists for p in ids if p is not None}))
    out: dict[str, list[dict[str, Any]]] = {}
    for cart, ids in zip(carts, lists, strict=True):
        inside = {i["product_id"] for i in contents[cart]}
        # a product the catalog does not hold has no title or price to show: left out
        out[cart] = [
            {**catalog[str(p)], "source": "recommender"}
            for p in ids
            if p is not None and str(p) in catalog and str(p) not in inside
        ]
    return out


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


def recommendations(
    items: Sequence[dict[str, Any]], facts: Facts, k: int = 3, *, cart_id: str | None = None
) -> list[dict[str, Any]]:
    """The products a message about the cart ``items`` suggests, best first, none of them in the cart.

    The served recommender's for ``cart_id`` when it gave some (`gather`), else the best sellers of
    the cart's categories; each with its ``source``.
    """
    suggested = facts.suggested.get(cart_id or "") if cart_id is not None else None
    if suggested:
        return [dict(item) for item in suggested[:k]]
    inside = {i["product_id"] for i in items}
    seen: set[str] = set()
    pool: list[dict[str, Any]] = []
    for category in dict.fromkeys(i.get("category") for i in items):
        for item in facts.best.get(category, []):
            if item["product_id"] not in inside and item["product_id"] not in seen:
                seen.add(item["product_id"])
                pool.append({**item, "source": "best-sellers"})
    return pool[:k]
