"""The simulation, start to end: catalog, customers, sessions, carts, reactions, events, truth."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from cartlift._random import RandomState, check_random_state
from cartlift.errors import InvalidParameterError
from cartlift.simulate._catalog import make_catalog
from cartlift.simulate._config import CHANNELS, DEVICES, SimulationConfig
from cartlift.simulate._customers import Customers, make_customers
from cartlift.simulate._events import (
    EVENT_CODES,
    Rows,
    concat_rows,
    event_table,
    organic_rows,
    recovery_rows,
    stamp,
)
from cartlift.simulate._response import action_effects, baseline_logit, sigmoid
from cartlift.simulate._result import SimulatedStore, Stats
from cartlift.simulate._sessions import (
    SLOT_MS,
    START_SPREAD_MS,
    Schedule,
    Views,
    make_schedule,
    resolve_slots,
    sample_views,
)
from cartlift.simulate._truth import (
    Abandoned,
    Visits,
    cart_truth,
    product_truth,
    session_truth,
    user_truth,
)
from cartlift.simulate._walk import Walk, calibrate, draw_uniforms, walk

__all__ = ["simulate"]

ProgressCallback = Callable[[str, float], None]
_HOUR_MS = 3_600_000
_LABEL = "simulating"


def simulate(
    config: SimulationConfig | None = None,
    *,
    random_state: RandomState = None,
    progress: ProgressCallback | None = None,
    **overrides: Any,
) -> SimulatedStore:
    """Simulate a store: catalog, customers, sessions and events, with the ground truth behind them.

    Parameters
    ----------
    config : SimulationConfig, optional
        Every knob (default: ``SimulationConfig()``: 5,000 customers over 30 days).
    random_state : int, numpy.random.Generator or None
        Same seed and config, identical tables.
    progress : callable, optional
        Called with a stage label and a percentage (0-100) as the simulation advances.
    **overrides
        Knobs of `SimulationConfig` to change, e.g. ``n_users=1000, n_days=7``.

    Returns
    -------
    SimulatedStore
        ``events``, ``products`` and the ``truth_*`` tables, ready to write to a store or Parquet.

    Examples
    --------
    >>> sim = simulate(n_users=200, n_days=7, random_state=0)
    >>> sorted(set(sim.events.column("event_type").to_pylist()))
    ['cart_add', 'cart_remove', 'checkout', 'purchase', 'view']
    """
    base = SimulationConfig() if config is None else config
    if not isinstance(base, SimulationConfig):
        raise InvalidParameterError(
            f"config must be a SimulationConfig or None. Got {type(base).__name__} instead."
        )
    cfg = base.with_overrides(**overrides) if overrides else base
    cfg.validate()
    report = progress or (lambda label, pct: None)
    rng = check_random_state(random_state)
    run_id = f"{int(rng.integers(0, 2**63)):016x}"
    r_cat, r_cust, r_sched, r_views, r_walk, r_time, r_rec = rng.spawn(7)

    report(_LABEL, 0.0)
    catalog = make_catalog(cfg, r_cat)
    customers = make_customers(cfg, r_cust)
    schedule = make_schedule(cfg, customers, r_sched)
    report(_LABEL, 8.0)
    views = sample_views(cfg, catalog, customers, schedule, r_views)
    report(_LABEL, 45.0)
    draws = draw_uniforms(views.n, schedule.n, r_walk)
    a0, c0, p0 = calibrate(cfg, views, schedule, customers, catalog, draws)
    w = walk(cfg, views, schedule, customers, catalog, draws, a0, c0, p0)
    del draws  # the largest arrays go as soon as they are used: they set the memory peak
    report(_LABEL, 55.0)

    org = organic_rows(views, w, schedule.n)
    org_ts = stamp(org, schedule.start_ms, r_time)
    last = org.pos == org.size[org.session] - 1
    end_ms = np.zeros(schedule.n, dtype=np.int64)
    end_ms[org.session[last]] = org_ts[last]
    abandoned = _abandon(cfg, schedule, customers, w, end_ms, r_rec)
    visits, rec_rows, abandoned = _return_visits(cfg, schedule, customers, abandoned, views, w, r_rec)
    del views
    org = Rows(
        org.session, org.pos, org.kind, org.item, org.qty, np.pad(org.size, (0, visits.n - schedule.n))
    )
    rows = concat_rows(org, rec_rows)
    ts = np.concatenate([org_ts, stamp(rec_rows, visits.start_ms, r_time)])
    del org, org_ts, rec_rows
    report(_LABEL, 70.0)

    events = event_table(
        rows,
        ts,
        visits.rank,
        cfg.start,
        visits.user,
        visits.channel,
        visits.device,
        customers.ids,
        catalog.ids,
        catalog.price,
        CHANNELS,
        DEVICES,
    )
    report(_LABEL, 90.0)
    kinds = np.bincount(rows.kind, minlength=len(EVENT_CODES))
    truth = {
        "truth_run": pa.table(
            {
                "run_id": [run_id],
                "seed": pa.array(
                    [int(random_state) if isinstance(random_state, numbers.Integral) else None], pa.int64()
                ),
                "config": [cfg.to_json()],
                "add_intercept": [a0],
                "checkout_intercept": [c0],
                "pay_intercept": [p0],
            }
        ),
        "truth_users": user_truth(customers, catalog, np.bincount(visits.user, minlength=customers.n)),
        "truth_products": product_truth(catalog),
        "truth_sessions": session_truth(visits, schedule, w, rows, ts, customers, cfg.start),
        "truth_carts": cart_truth(abandoned, visits, w, customers, schedule.user, cfg.start),
    }
    k = visits.n - visits.n_organic
    carts = int(w.has_cart.sum()) + k
    stats = Stats(
        events_by_type={name: int(n) for name, n in zip(EVENT_CODES, kinds, strict=True)},
        sessions=visits.n,
        users=customers.n,
        products=catalog.n_products,
        sessions_with_cart=carts,
        abandoned_carts=len(abandoned.session),
        cart_abandonment_rate=len(abandoned.session) / carts if carts else float("nan"),
        conversion_rate=(int(w.purchase.sum()) + k) / visits.n,
    )
    report(_LABEL, 100.0)
    return SimulatedStore(
        config=cfg,
        run_id=run_id,
        events=events,
        products=catalog.table,
        truth=truth,
        stats=stats,
        _customers=customers,
        _catalog=catalog,
        _add_intercept=a0,
    )


def _abandon(
    cfg: SimulationConfig,
    schedule: Schedule,
    customers: Customers,
    w: Walk,
    end_ms: np.ndarray,
    rng: np.random.Generator,
) -> Abandoned:
    """Abandoned carts, their potential outcomes under every action, and the draw under "nothing"."""
    ab = np.flatnonzero(w.has_cart & ~w.purchase)
    u = schedule.user[ab]
    base_logit = baseline_logit(
        customers.response[u],
        schedule.intent[ab],
        customers.price_sensitivity[u],
        w.log_value_ratio[ab],
        customers.forgetfulness[u],
    )
    effects = action_effects(
        customers.response[u],
        customers.email[u],
        customers.sms[u],
        customers.forgetfulness[u],
        customers.price_sensitivity[u],
        customers.urgency[u],
        1.0 - customers.cat_pref[u].max(axis=1),
        customers.harm[u],
    )
    probs = sigmoid(base_logit[:, None] + effects)
    return Abandoned(session=ab, probs=probs, came_back=rng.random(len(ab)) < probs[:, 0], end_ms=end_ms)


def _return_visits(
    cfg: SimulationConfig,
    schedule: Schedule,
    customers: Customers,
    abandoned: Abandoned,
    views: Views,
    w: Walk,
    rng: np.random.Generator,
) -> tuple[Visits, Rows, Abandoned]:
    """Schedule the unprompted return visits and lay out their events (view, add again, buy).

    A return that would come after the simulated period is not simulated: the store's history
    ends with the period, as a real store's does (otherwise the last days would hold nothing but
    returns, all of which buy). The returned `Abandoned` marks those carts as not come back.
    """
    n_s = schedule.n
    u = schedule.user[abandoned.session]
    # forgetful customers come back later; the visit starts inside the outcome window
    mean_h = 4.0 + 40.0 * customers.forgetfulness[u]
    span_h = max(cfg.outcome_window_days * 24.0 - 3.0, 0.25) - 0.25
    delay_h = 0.25 - mean_h * np.log1p(-rng.random(len(u)) * -np.expm1(-span_h / mean_h))
    ready_all = abandoned.end_ms[abandoned.session] + (delay_h * _HOUR_MS).astype(np.int64)
    # the visit starts in the first free slot after it is ready, plus a spread: keep it inside the period
    back = abandoned.came_back & (ready_all + SLOT_MS + START_SPREAD_MS <= cfg.n_days * 24 * _HOUR_MS)
    abandoned = replace(abandoned, came_back=back)
    rec = abandoned.session[back]
    k = len(rec)
    ready = ready_all[back]
    slots = resolve_slots(
        np.concatenate([schedule.user, schedule.user[rec]]),
        np.concatenate([schedule.slot, -(-ready // SLOT_MS)]),
        np.concatenate([np.zeros(n_s, dtype=bool), np.ones(k, dtype=bool)]),
    )
    user = np.concatenate([schedule.user, schedule.user[rec]])
    start_ms = np.concatenate(
        [schedule.start_ms, slots[n_s:] * SLOT_MS + rng.integers(0, START_SPREAD_MS, k)]
    )
    order = np.lexsort((user, start_ms))  # session ids follow time
    rank = np.empty(n_s + k, dtype=np.int64)
    rank[order] = np.arange(n_s + k)
    rec_rows, rec_items = recovery_rows(views, w, rec, n_s, n_s + k)
    visits = Visits(
        n_organic=n_s,
        user=user,
        start_ms=start_ms,
        channel=np.concatenate([schedule.channel, np.full(k, CHANNELS.index("direct"))]),
        device=np.concatenate([schedule.device, customers.device[schedule.user[rec]]]),
        rank=rank,
        returned=rec,
        returned_items=rec_items,
    )
    return visits, rec_rows, abandoned
