"""Laying the sessions out as events, with timestamps, in cartlift's own event schema.

No per-event Python: every event gets its session and its position within the session from
cumulative counts, and one scatter puts it in place. Within a session the order is: each view,
followed by its cart_add when the product was added; then the removals; then checkout; then
one purchase line per product of the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cartlift.simulate._sessions import MAX_SESSION_MS, Views
from cartlift.simulate._walk import Walk

__all__ = [
    "EVENT_CODES",
    "Rows",
    "concat_rows",
    "event_table",
    "numbered",
    "organic_rows",
    "recovery_rows",
    "stamp",
]

EVENT_CODES = ("view", "cart_add", "cart_remove", "checkout", "purchase")
VIEW, ADD, REMOVE, CHECKOUT, PURCHASE = range(5)
_GAP_BASE_MS = np.array([5_000, 2_000, 5_000, 10_000, 20_000])
_GAP_MEAN_MS = np.array([40_000, 10_000, 30_000, 45_000, 70_000])


@dataclass
class Rows:
    """Events before layout: their session, position within it, type, product and quantity."""

    session: np.ndarray
    pos: np.ndarray
    kind: np.ndarray
    item: np.ndarray
    qty: np.ndarray
    size: np.ndarray  # events per session, indexed by session

    def layout(self, first: np.ndarray) -> np.ndarray:
        """Where each event goes, given the first position of each session."""
        return first[self.session] + self.pos


def _rank_within(flag: np.ndarray, first_row: np.ndarray, session: np.ndarray) -> np.ndarray:
    """For rows grouped by session, how many flagged rows of the same session come before each row."""
    before = np.cumsum(flag) - flag
    return before - before[first_row[session]]


def organic_rows(views: Views, w: Walk, n_sessions: int) -> Rows:
    """The events of every organic session, in the order described in the module docstring."""
    s = views.session
    first_row = np.searchsorted(s, np.arange(n_sessions))
    n_v = np.bincount(s, minlength=n_sessions)
    n_a = np.bincount(s, weights=w.added, minlength=n_sessions).astype(np.int64)
    n_r = np.bincount(s, weights=w.removed, minlength=n_sessions).astype(np.int64)
    kept = w.added & ~w.removed
    pos_view = views.order + _rank_within(w.added, first_row, s)
    after_walk = (n_v + n_a)[s]
    pos_rm = after_walk + _rank_within(w.removed, first_row, s)
    check_pos = n_v + n_a + n_r
    bought = kept & w.purchase[s]
    pos_buy = check_pos[s] + 1 + _rank_within(kept, first_row, s)
    chk = np.flatnonzero(w.checkout)
    size = (
        n_v + n_a + n_r + w.checkout + np.bincount(s, weights=bought, minlength=n_sessions).astype(np.int64)
    )
    a, r, b = np.flatnonzero(w.added), np.flatnonzero(w.removed), np.flatnonzero(bought)
    return Rows(
        session=np.concatenate([s, s[a], s[r], chk, s[b]]),
        pos=np.concatenate([pos_view, pos_view[a] + 1, pos_rm[r], check_pos[chk], pos_buy[b]]),
        kind=np.concatenate(
            [
                np.full(len(s), VIEW, np.int8),
                np.full(len(a), ADD, np.int8),
                np.full(len(r), REMOVE, np.int8),
                np.full(len(chk), CHECKOUT, np.int8),
                np.full(len(b), PURCHASE, np.int8),
            ]
        ),
        item=np.concatenate([views.item, views.item[a], views.item[r], np.full(len(chk), -1), views.item[b]]),
        qty=np.concatenate(
            [np.ones(len(s), np.int32), w.qty[a], w.qty[r], np.ones(len(chk), np.int32), w.qty[b]]
        ),
        size=size.astype(np.int64),
    )


def recovery_rows(
    views: Views, w: Walk, recovered: np.ndarray, first_session: int, n_sessions: int
) -> tuple[Rows, np.ndarray]:
    """Return visits for the abandoned sessions ``recovered`` (sorted): the kept products are
    viewed and added again, then checked out and bought.

    The return visit of ``recovered[i]`` is session ``first_session + i``. Also returns, per
    return visit, the number of products bought.
    """
    kept = w.added & ~w.removed
    is_recovered = np.zeros(n_sessions, dtype=bool)
    is_recovered[recovered] = True
    rows = np.flatnonzero(kept & is_recovered[views.session])
    local = np.searchsorted(recovered, views.session[rows])
    first = np.searchsorted(local, np.arange(len(recovered)))
    j = np.arange(len(rows)) - first[local]
    n_items = np.bincount(local, minlength=len(recovered))
    session = first_session + local
    m = len(rows)
    k = len(recovered)
    size = np.zeros(n_sessions, dtype=np.int64)
    size[first_session : first_session + k] = 3 * n_items + 1
    chk_sessions = first_session + np.arange(k)
    out = Rows(
        session=np.concatenate([session, session, chk_sessions, session]),
        pos=np.concatenate([2 * j, 2 * j + 1, 2 * n_items, 2 * n_items[local] + 1 + j]),
        kind=np.concatenate(
            [
                np.full(m, VIEW, np.int8),
                np.full(m, ADD, np.int8),
                np.full(k, CHECKOUT, np.int8),
                np.full(m, PURCHASE, np.int8),
            ]
        ),
        item=np.concatenate([views.item[rows], views.item[rows], np.full(k, -1), views.item[rows]]),
        qty=np.concatenate([np.ones(m, np.int32), w.qty[rows], np.ones(k, np.int32), w.qty[rows]]),
        size=size,
    )
    return out, n_items


def concat_rows(a: Rows, b: Rows) -> Rows:
    """The events of two disjoint sets of sessions (``size`` arrays are added)."""
    return Rows(
        session=np.concatenate([a.session, b.session]),
        pos=np.concatenate([a.pos, b.pos]),
        kind=np.concatenate([a.kind, b.kind]),
        item=np.concatenate([a.item, b.item]),
        qty=np.concatenate([a.qty, b.qty]),
        size=a.size + b.size,
    )


def stamp(rows: Rows, start_ms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Millisecond timestamps of ``rows`` (from the simulation start), strictly increasing in a session.

    Gaps between events depend on the event type (reading a product page takes longer than
    clicking "add"); order lines of one purchase are 1 ms apart; a session whose gaps add up to
    more than 55 minutes is compressed to fit.
    """
    first = np.concatenate([[0], np.cumsum(rows.size)[:-1]])
    at = rows.layout(first)
    n = len(at)
    kind = np.empty(n, np.int8)
    kind[at] = rows.kind
    sess = np.repeat(np.arange(len(rows.size)), rows.size)
    gap = _GAP_BASE_MS[kind] + rng.exponential(1.0, n) * _GAP_MEAN_MS[kind]
    opens = np.zeros(n, dtype=bool)
    opens[first[rows.size > 0]] = True
    gap[opens] = 0.0
    follow = np.zeros(n, dtype=bool)
    follow[1:] = (kind[1:] == PURCHASE) & (kind[:-1] == PURCHASE) & ~opens[1:]
    gap[follow] = 1.0
    total = np.bincount(sess, weights=gap, minlength=len(rows.size))
    squeeze = np.minimum(1.0, MAX_SESSION_MS / np.maximum(total, 1.0))
    gap = np.where(opens, 0, np.maximum(np.floor(gap * squeeze[sess]), 1)).astype(np.int64)
    within = np.cumsum(gap)
    within -= np.repeat(within[first[rows.size > 0]], rows.size[rows.size > 0])
    ts = start_ms[sess] + within
    return ts[at]


def numbered(prefix: str, n: int) -> pa.Array:
    """``prefix0, prefix1, ...`` as an Arrow string array (Arrow builds 10M of these in a second)."""
    return pc.binary_join_element_wise(
        prefix, pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string()), ""
    )


def _dict(indices: np.ndarray, values: pa.Array, mask: np.ndarray | None = None) -> pa.DictionaryArray:
    idx = pa.array(indices.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(idx, values)


def event_table(
    rows: Rows,
    ts_ms: np.ndarray,
    session_rank: np.ndarray,
    start: datetime,
    user_of_session: np.ndarray,
    channel_of_session: np.ndarray,
    device_of_session: np.ndarray,
    user_ids: np.ndarray,
    product_ids: np.ndarray,
    product_price: np.ndarray,
    channels: tuple[str, ...],
    devices: tuple[str, ...],
) -> pa.Table:
    """The ``events`` table: sessions in order of ``session_rank``, events in order within each.

    Id-like columns are dictionary-encoded strings (cheap to build, read as plain text by
    DuckDB, Parquet and pandas).
    """
    n_sessions = len(session_rank)
    by_rank = np.empty(n_sessions, dtype=np.int64)
    by_rank[session_rank] = np.arange(n_sessions)
    size_in_order = rows.size[by_rank]
    first = np.empty(n_sessions, dtype=np.int64)
    first[by_rank] = np.concatenate([[0], np.cumsum(size_in_order)[:-1]])
    at = rows.layout(first)
    n = len(at)

    def place(values: np.ndarray) -> np.ndarray:
        out = np.empty(n, dtype=values.dtype)
        out[at] = values
        return out

    session = place(rows.session)
    kind = place(rows.kind)
    item = place(rows.item)
    qty = place(rows.qty)
    stamp_ms = place(ts_ms)
    rank = session_rank[session]
    no_product = item < 0
    purchase = kind == PURCHASE
    epoch_ms = int(start.timestamp() * 1000)
    session_names = numbered("s", n_sessions)
    order_names = numbered("o", n_sessions)
    event_ids = numbered("e", n)
    return pa.table(
        {
            "event_id": event_ids,
            "ts": pa.array(stamp_ms + epoch_ms, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "user_id": _dict(user_of_session[session], pa.array(user_ids, pa.string())),
            "session_id": _dict(rank, session_names),
            "event_type": _dict(kind, pa.array(EVENT_CODES, pa.string())),
            "product_id": _dict(
                np.where(no_product, 0, item), pa.array(product_ids, pa.string()), no_product
            ),
            "quantity": pa.array(qty, pa.int32()),
            "price": pa.array(
                np.where(no_product, 0.0, product_price[np.maximum(item, 0)]), pa.float64(), mask=no_product
            ),
            "order_id": _dict(rank, order_names, ~purchase),
            "channel": _dict(channel_of_session[session], pa.array(channels, pa.string())),
            "device": _dict(device_of_session[session], pa.array(devices, pa.string())),
            "properties": pa.nulls(n, pa.string()),
        }
    )
