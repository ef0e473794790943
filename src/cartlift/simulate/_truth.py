"""The truth tables: what the simulator knows and a store never sees."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from cartlift.simulate._catalog import Catalog
from cartlift.simulate._config import ACTIONS, CHANNELS, DEVICES, RESPONSE_TYPES
from cartlift.simulate._customers import Customers
from cartlift.simulate._events import ADD, REMOVE, Rows, numbered
from cartlift.simulate._sessions import Schedule
from cartlift.simulate._walk import Walk

__all__ = [
    "Abandoned",
    "Visits",
    "cart_truth",
    "product_truth",
    "session_truth",
    "strings",
    "user_truth",
]


@dataclass(frozen=True)
class Abandoned:
    """Abandoned organic carts: their session, potential outcomes and the unprompted return."""

    session: np.ndarray  # organic session index, ascending
    probs: np.ndarray  # shape (n, len(ACTIONS)): P(buy within the window | action)
    came_back: np.ndarray  # the draw under "nothing"
    end_ms: np.ndarray  # per organic session: time of its last event


@dataclass(frozen=True)
class Visits:
    """Every session: organic ones (indices < n_organic), then return visits for abandoned carts."""

    n_organic: int
    user: np.ndarray
    start_ms: np.ndarray
    channel: np.ndarray
    device: np.ndarray
    rank: np.ndarray  # position by start time: session ``i`` is called ``s{rank[i]}``
    returned: np.ndarray  # organic session of each return visit, in return-visit order
    returned_items: np.ndarray  # products bought in each return visit

    @property
    def n(self) -> int:
        """All sessions."""
        return len(self.user)


def strings(indices: np.ndarray, values: Any) -> pa.Array:
    """Plain strings ``values[indices]`` (gathered by Arrow through a dictionary)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(indices, dtype=np.int32)), pa.array(values, pa.string())
    ).cast(pa.string())


def _ts(ms: np.ndarray, start: datetime, mask: np.ndarray | None = None) -> pa.Array:
    epoch_ms = int(start.timestamp() * 1000)
    return pa.array(np.asarray(ms, dtype=np.int64) + epoch_ms, pa.int64(), mask=mask).cast(
        pa.timestamp("ms", tz="UTC")
    )


def session_truth(
    visits: Visits,
    schedule: Schedule,
    w: Walk,
    rows: Rows,
    ts: np.ndarray,
    customers: Customers,
    start: datetime,
) -> pa.Table:
    """``truth_sessions``: one row per session, with its true P(purchase) at the last cart event.

    Return visits (a customer coming back for an abandoned cart) always buy: their probability is 1.
    """
    k = visits.n - visits.n_organic
    cart_event = (rows.kind == ADD) | (rows.kind == REMOVE)
    last_cart = np.full(visits.n, -1, dtype=np.int64)
    np.maximum.at(last_cart, rows.session[cart_event], ts[cart_event])
    o = np.argsort(visits.rank)
    organic = np.arange(visits.n) < visits.n_organic
    has_cart = np.concatenate([w.has_cart, np.ones(k, dtype=bool)])[o]
    p_purchase = np.concatenate([w.p_purchase, np.ones(k)])[o]
    intent = np.concatenate([schedule.intent, np.full(k, np.nan)])[o]
    value = np.concatenate([w.cart_value, w.cart_value[visits.returned]])[o]
    last = last_cart[o]
    return pa.table(
        {
            "session_id": numbered("s", visits.n),
            "user_id": strings(visits.user[o], customers.ids),
            "started_at": _ts(visits.start_ms[o], start),
            "kind": strings(~organic[o], ["organic", "return_visit"]),
            "channel": strings(visits.channel[o], CHANNELS),
            "device": strings(visits.device[o], DEVICES),
            "returning": pa.array(np.concatenate([schedule.returning, np.ones(k, dtype=bool)])[o]),
            "intent": pa.array(intent, mask=np.isnan(intent)),
            "has_cart": pa.array(has_cart),
            "cart_value": pa.array(np.where(has_cart, value, 0.0)),
            "cart_items": pa.array(np.concatenate([w.n_items, visits.returned_items])[o].astype(np.int32)),
            "last_cart_event_at": _ts(np.maximum(last, 0), start, last < 0),
            "p_purchase": pa.array(p_purchase, mask=np.isnan(p_purchase)),
            "purchased": pa.array(np.concatenate([w.purchase, np.ones(k, dtype=bool)])[o]),
        }
    )


def cart_truth(
    abandoned: Abandoned, visits: Visits, w: Walk, customers: Customers, user: np.ndarray, start: datetime
) -> pa.Table:
    """``truth_carts``: every abandoned cart with its potential outcome under each action.

    Rows follow the order of the abandoned sessions' ids; ``recovered`` is the realised outcome
    under "nothing" (the customer's unprompted return visit, ``return_session_id``) as far as the
    simulated period shows it: a return that would come after the period's end is not simulated.
    """
    n_org = visits.n_organic
    ab = abandoned.session
    order = np.argsort(visits.rank[ab], kind="stable")
    s, u = ab[order], user[ab[order]]
    back = abandoned.came_back[order]
    visit = np.full(len(ab), -1, dtype=np.int64)
    visit[np.flatnonzero(abandoned.came_back)] = n_org + np.arange(visits.n - n_org)
    visit = np.maximum(visit[order], 0)
    names = numbered("s", visits.n)
    columns: dict[str, Any] = {
        "cart_id": names.take(pa.array(visits.rank[s])),
        "user_id": strings(u, customers.ids),
        "abandoned_at": _ts(abandoned.end_ms[s], start),
        "cart_value": pa.array(w.cart_value[s]),
        "cart_cost": pa.array(w.cart_cost[s]),
        "cart_items": pa.array(w.n_items[s].astype(np.int32)),
        "response_type": strings(customers.response[u], RESPONSE_TYPES),
        "email_consent": pa.array(customers.email[u]),
        "sms_consent": pa.array(customers.sms[u]),
    }
    for j, action in enumerate(ACTIONS):
        columns[f"p_{action}"] = pa.array(abandoned.probs[order, j])
    columns["recovered"] = pa.array(back)
    columns["return_session_id"] = names.take(pa.array(visits.rank[visit], mask=~back))
    columns["returned_at"] = _ts(visits.start_ms[visit], start, ~back)
    return pa.table(columns)


def user_truth(customers: Customers, catalog: Catalog, sessions: np.ndarray) -> pa.Table:
    """``truth_users``: every customer's latent traits (``sessions``: visits per customer)."""
    is_dog = customers.response == RESPONSE_TYPES.index("sleeping_dog")
    return pa.table(
        {
            "user_id": pa.array(customers.ids, pa.string()),
            "existing_customer": pa.array(customers.existing),
            "arrival_day": pa.array(customers.arrival),
            "visits_per_day": pa.array(customers.rate),
            "sessions": pa.array(sessions.astype(np.int32)),
            "main_device": strings(customers.device, DEVICES),
            "email_consent": pa.array(customers.email),
            "sms_consent": pa.array(customers.sms),
            "favourite_category": strings(customers.cat_pref.argmax(axis=1), catalog.category_names),
            "price_sensitivity": pa.array(customers.price_sensitivity),
            "intent": pa.array(customers.intent),
            "forgetfulness": pa.array(customers.forgetfulness),
            "urgency": pa.array(customers.urgency),
            "response_type": strings(customers.response, RESPONSE_TYPES),
            "contact_harm": pa.array(np.where(is_dog, customers.harm, 0.0)),
            # days from arrival to drop-out (inf: never within any horizon); visits stop there
            "lifetime_days": pa.array(customers.lifetime),
            # the spend shift: dearer and more products in the cart (`add_logits`); 0 without spend_spread
            "spend_shift": pa.array(customers.spend),
        }
    )


def product_truth(catalog: Catalog) -> pa.Table:
    """``truth_products``: the latent appeal of every product."""
    return pa.table(
        {
            "product_id": pa.array(catalog.ids, pa.string()),
            "log_popularity": pa.array(catalog.log_popularity),
            "quality": pa.array(catalog.quality),
            "log_price_ratio": pa.array(catalog.log_price_ratio),
        }
    )
