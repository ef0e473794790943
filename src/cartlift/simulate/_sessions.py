"""When customers visit, from which channel and device, and which products they look at.

Visits sit on a grid of two-hour slots (weighted by time of day): a session starts in the first
half hour of its slot and lasts under 55 minutes, so two sessions of one customer are always
more than 30 minutes apart and re-sessionizing by inactivity gives the same sessions back.

Views are exact draws from each customer's taste: a session picks a category from the
customer's Dirichlet tastes, then products of that category *without replacement* with
probabilities proportional to ``popularity * exp(customer . product factors)`` (the Gumbel
top-k trick, done as one matrix product per category and chunk of sessions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cartlift.simulate._catalog import Catalog
from cartlift.simulate._config import CHANNELS, DEVICES, SimulationConfig
from cartlift.simulate._customers import Customers

__all__ = ["SLOT_MS", "Schedule", "Views", "make_schedule", "resolve_slots", "sample_views"]

SLOT_MS = 2 * 3600 * 1000
"""Length of a visit slot in milliseconds (12 a day)."""
START_SPREAD_MS = 30 * 60 * 1000
"""A session starts within this long of its slot's start."""
MAX_SESSION_MS = 55 * 60 * 1000
"""A session lasts at most this long, so the next slot's session comes > 30 minutes later."""
MAX_MAIN_VIEWS = 40
MAX_COMPLEMENT_VIEWS = 20
_DIURNAL = np.array([0.5, 0.2, 0.25, 0.7, 1.3, 1.5, 1.6, 1.4, 1.6, 2.0, 2.2, 1.3])  # per 2-hour slot
_SLOT_BITS = 24
# visit channels in the order of CHANNELS; newsletters only reach customers who came before
_CHANNEL_NEW = np.array([0.10, 0.30, 0.30, 0.18, 0.0, 0.12])
_CHANNEL_RETURNING = np.array([0.35, 0.20, 0.12, 0.08, 0.20, 0.05])
CHANNEL_EFFECT = np.array([0.3, 0.0, -0.1, -0.4, 0.4, 0.0])
"""Purchase-intent shift (logit) of a visit from each of ``CHANNELS``."""
RETURNING_EFFECT = 0.3
"""Purchase-intent shift (logit) of a returning customer's visit."""
SESSION_NOISE = 0.5


@dataclass
class Schedule:
    """One entry per organic session, grouped by customer; times in ms from the simulation start."""

    user: np.ndarray
    slot: np.ndarray
    start_ms: np.ndarray
    returning: np.ndarray
    channel: np.ndarray
    device: np.ndarray
    intent: np.ndarray

    @property
    def n(self) -> int:
        """Number of sessions."""
        return len(self.user)


@dataclass
class Views:
    """One entry per product view, grouped by session and in viewing order within a session.

    ``order`` is the view's position within its session; ``affinity`` the customer-product dot
    product (the taste part that also drives cart adds).
    """

    session: np.ndarray
    order: np.ndarray
    item: np.ndarray
    affinity: np.ndarray

    @property
    def n(self) -> int:
        """Number of views."""
        return len(self.session)


def resolve_slots(user: np.ndarray, slot: np.ndarray, movable: np.ndarray) -> np.ndarray:
    """Move sessions that share a (customer, slot) with another one to the next free slot.

    Among sessions in the same slot, one that is not ``movable`` keeps its place; the others
    move later, one slot at a time, until every customer has at most one session per slot.
    """
    slot = slot.astype(np.int64).copy()
    user64 = user.astype(np.int64)
    while True:
        key = (user64 << (_SLOT_BITS + 1)) | (slot << 1) | movable.astype(np.int64)
        order = np.argsort(key, kind="stable")
        ks = key[order] >> 1
        clash = np.zeros(len(slot), dtype=bool)
        clash[order[1:]] = ks[1:] == ks[:-1]
        if not clash.any():
            return slot
        slot[clash] += 1


def _categorical_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of ``probs`` (rows sum to 1), by inverting each row's CDF."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def make_schedule(config: SimulationConfig, customers: Customers, rng: np.random.Generator) -> Schedule:
    """Draw every organic session: its customer, start, channel, device and purchase intent."""
    days = config.n_days
    # visits stop when the customer drops out (or when the period ends)
    active = np.minimum(days - customers.arrival, customers.lifetime)
    n_sess = 1 + rng.poisson(customers.rate * active)
    user = np.repeat(np.arange(customers.n), n_sess)
    first = np.zeros(len(user), dtype=bool)
    first[np.concatenate([[0], np.cumsum(n_sess)[:-1]])] = True
    arrival = customers.arrival[user]
    # a new customer's first visit is on the day they arrive; later ones anywhere after that
    day_float = np.where(first, arrival, arrival + rng.random(len(user)) * active[user])
    day = np.minimum(np.floor(day_float), days - 1).astype(np.int64)
    slot_of_day = np.searchsorted(np.cumsum(_DIURNAL) / _DIURNAL.sum(), rng.random(len(user)), side="right")
    slot = resolve_slots(user, day * 12 + np.minimum(slot_of_day, 11), np.ones(len(user), dtype=bool))
    start_ms = slot * SLOT_MS + rng.integers(0, START_SPREAD_MS, len(user))

    # a session is "returning" when the customer bought before or visited earlier
    order = np.lexsort((slot, user))
    rank = np.empty(len(user), dtype=np.int64)
    rank[order] = np.arange(len(user)) - np.repeat(np.cumsum(n_sess) - n_sess, n_sess)
    returning = customers.existing[user] | (rank > 0)

    probs = np.where(returning[:, None], _CHANNEL_RETURNING, _CHANNEL_NEW)
    channel = _categorical_rows(rng, probs)
    email = CHANNELS.index("email")
    # only customers who accepted e-mails arrive from a newsletter
    channel = np.where((channel == email) & ~customers.email[user], CHANNELS.index("direct"), channel)
    main = customers.device[user]
    other = (main + rng.integers(1, len(DEVICES), len(user))) % len(DEVICES)
    device = np.where(rng.random(len(user)) < 0.85, main, other)
    intent = (
        customers.intent[user]
        + CHANNEL_EFFECT[channel]
        + RETURNING_EFFECT * returning
        + rng.normal(0.0, SESSION_NOISE, len(user))
    )
    return Schedule(
        user=user,
        slot=slot,
        start_ms=start_ms,
        returning=returning,
        channel=channel,
        device=device,
        intent=intent,
    )


def _complements(config: SimulationConfig) -> list[np.ndarray]:
    names = [c.name for c in config.categories]
    return [np.array([names.index(x) for x in c.complements], dtype=np.int64) for c in config.categories]


def _top_m(
    rng: np.random.Generator, user_factors: np.ndarray, catalog: Catalog, lo: int, hi: int, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``user_factors``, ``m`` products of ``lo:hi`` drawn without replacement.

    Returns the drawn columns (in draw order) and their affinities, both of shape (rows, m).
    """
    # numpy's own einsum beats BLAS for an inner dimension this small (no thread start-up)
    aff = np.einsum("rk,kn->rn", user_factors, catalog.factors[lo:hi].T)
    # log weight plus a Gumbel(-log(-log u)) noise: the order statistics of the perturbed
    # weights are successive draws without replacement (the Gumbel top-k trick)
    u = rng.random(aff.shape, dtype=np.float32)
    keys = aff + catalog.log_popularity[lo:hi].astype(np.float32)
    keys -= np.log(-np.log(np.maximum(u, np.float32(1e-38))))
    rows = np.arange(len(keys))[:, None]
    n = hi - lo
    if m <= 8:  # a few argmax passes beat a partition for the many short sessions
        top = np.empty((len(keys), m), dtype=np.int64)
        for t in range(m):
            top[:, t] = keys.argmax(axis=1)
            keys[rows[:, 0], top[:, t]] = -np.inf
    else:
        top = (
            np.argpartition(keys, n - m, axis=1)[:, n - m :]
            if m < n
            else np.tile(np.arange(n), (len(keys), 1))
        )
        top = np.take_along_axis(top, np.argsort(-keys[rows, top], axis=1), axis=1)
    return top, aff[rows, top]


def sample_views(
    config: SimulationConfig,
    catalog: Catalog,
    customers: Customers,
    schedule: Schedule,
    rng: np.random.Generator,
) -> Views:
    """Draw the products each session views (see the module docstring)."""
    n_s = schedule.n
    sizes = np.diff(catalog.cat_start)
    main_cat = _categorical_rows(rng, customers.cat_pref[schedule.user])
    p = 1.0 / config.views_per_session
    n_main = np.minimum(np.minimum(rng.geometric(p, n_s), MAX_MAIN_VIEWS), sizes[main_cat])

    comps = _complements(config)
    n_comp_options = np.array([len(c) for c in comps])[main_cat]
    has_comp = (n_comp_options > 0) & (rng.random(n_s) < config.complement_rate)
    pick = np.floor(rng.random(n_s) * np.maximum(n_comp_options, 1)).astype(np.int64)
    flat = np.concatenate([*comps, np.zeros(1, dtype=np.int64)])
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in comps])])
    comp_cat = flat[offsets[main_cat] + pick]
    n_comp = np.where(
        has_comp, np.minimum(np.minimum(rng.geometric(0.5, n_s), MAX_COMPLEMENT_VIEWS), sizes[comp_cat]), 0
    )

    # blocks: (session, category, views, first view position); complements come after the main views
    sess_idx = np.arange(n_s)
    b_sess = np.concatenate([sess_idx, sess_idx[has_comp]])
    b_cat = np.concatenate([main_cat, comp_cat[has_comp]])
    b_n = np.concatenate([n_main, n_comp[has_comp]])
    b_first = np.concatenate([np.zeros(n_s, dtype=np.int64), n_main[has_comp]])

    total = int(b_n.sum())
    # 32-bit indices: views are most of the events, so their arrays set the memory peak
    out_sess = np.empty(total, dtype=np.int32)
    out_order = np.empty(total, dtype=np.int32)
    out_item = np.empty(total, dtype=np.int32)
    out_aff = np.empty(total, dtype=np.float32)
    # each session's views are contiguous and in order: main views, then complement views
    sess_offset = np.concatenate([[0], np.cumsum(n_main + n_comp)[:-1]])
    b_offset = np.concatenate([sess_offset, (sess_offset + n_main)[has_comp]])
    # blocks of one category and one length share a matrix, so no row pays for a longer one
    by_group = np.lexsort((b_n, b_cat))
    bounds = np.flatnonzero(np.diff(b_cat[by_group]) | np.diff(b_n[by_group])) + 1
    for group in np.split(by_group, bounds):
        c, m = int(b_cat[group[0]]), int(b_n[group[0]])
        lo, hi = int(catalog.cat_start[c]), int(catalog.cat_start[c + 1])
        chunk = max(1, (1 << 20) // (hi - lo))
        for s in range(0, len(group), chunk):
            part = group[s : s + chunk]
            top, aff = _top_m(rng, customers.factors[schedule.user[b_sess[part]]], catalog, lo, hi, m)
            dest = b_offset[part][:, None] + np.arange(m)
            out_sess[dest] = b_sess[part][:, None]
            out_order[dest] = b_first[part][:, None] + np.arange(m)
            out_item[dest] = lo + top
            out_aff[dest] = aff
    return Views(session=out_sess, order=out_order, item=out_item, affinity=out_aff)
