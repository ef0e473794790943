"""The walk of a session after its views: cart adds, removals, checkout, purchase or abandonment.

With ``iota`` the session's purchase intent (logit), ``beta`` the customer's price sensitivity,
``lp`` a product's log price relative to its category's median and ``lv`` the log cart value
relative to a typical product's price:

- each viewed product is added with ``sigmoid(a0 + iota + 0.7 affinity + quality - beta lp + s (0.5 + lp))``,
  ``s`` the customer's spend shift (0 unless ``spend_spread`` is set: dearer and more products);
- with two or more products in the cart, each is removed again with
  ``sigmoid(-2 + 0.6 beta lp)`` (a session never removes its whole cart);
- the session checks out with ``sigmoid(c0 + iota - 0.6 beta lv - (forget - 0.4) + device)``
  and pays with ``sigmoid(p0 + 0.3 iota - 0.3 beta lv + device)``.

So the true chance that a session with a cart ends in a purchase, at the moment of its last
cart event, is the product of the last two. ``a0``, ``c0`` and ``p0`` are calibrated so that
the expected share of sessions with a purchase, of carts abandoned and of checkouts completed
hit the configured targets, counting the later visits in which customers come back for an
abandoned cart.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

import numpy as np
from scipy.optimize import brentq

from cartlift.errors import CartliftWarning
from cartlift.simulate._catalog import Catalog
from cartlift.simulate._config import SimulationConfig
from cartlift.simulate._customers import Customers
from cartlift.simulate._response import baseline_logit, sigmoid
from cartlift.simulate._sessions import Schedule, Views

__all__ = ["Draws", "Walk", "calibrate", "draw_uniforms", "walk"]

CHECKOUT_DEVICE = np.array([-0.3, 0.0, -0.1])  # mobile, desktop, tablet: small screens lose checkouts
PAY_DEVICE = np.array([-0.2, 0.3, 0.0])
_CALIBRATION_SESSIONS = 100_000
_BRACKET = (-30.0, 30.0)


@dataclass(frozen=True)
class Draws:
    """Uniform draws fixed before calibration, so re-walking with new intercepts is deterministic."""

    add: np.ndarray  # per view
    qty: np.ndarray  # per view
    remove: np.ndarray  # per view
    checkout: np.ndarray  # per session
    pay: np.ndarray  # per session


@dataclass
class Walk:
    """What happened in each session; view arrays align with `Views`, session arrays with `Schedule`."""

    added: np.ndarray
    qty: np.ndarray
    removed: np.ndarray
    has_cart: np.ndarray
    cart_value: np.ndarray
    cart_cost: np.ndarray
    n_items: np.ndarray
    log_value_ratio: np.ndarray
    checkout_logit: np.ndarray
    pay_logit: np.ndarray
    p_purchase: np.ndarray
    checkout: np.ndarray
    purchase: np.ndarray


def draw_uniforms(n_views: int, n_sessions: int, rng: np.random.Generator) -> Draws:
    """The uniforms every decision of the walk compares its probability with."""
    # single precision is plenty for a Bernoulli draw and halves the largest arrays
    return Draws(
        add=rng.random(n_views, dtype=np.float32),
        qty=rng.random(n_views, dtype=np.float32),
        remove=rng.random(n_views, dtype=np.float32),
        checkout=rng.random(n_sessions),
        pay=rng.random(n_sessions),
    )


def add_logits(views: Views, schedule: Schedule, customers: Customers, catalog: Catalog) -> np.ndarray:
    """Cart-add logit of every view, without the intercept ``a0``."""
    user = schedule.user[views.session]
    x = schedule.intent.astype(np.float32)[views.session]
    x += np.float32(0.7) * views.affinity
    x += catalog.quality.astype(np.float32)[views.item]
    x -= (
        customers.price_sensitivity.astype(np.float32)[user]
        * catalog.log_price_ratio.astype(np.float32)[views.item]
    )
    if customers.spend.any():  # customers who buy dearer and more (`spend_spread`)
        shift = customers.spend.astype(np.float32)[user]
        x += shift * (np.float32(0.5) + catalog.log_price_ratio.astype(np.float32)[views.item])
    return x


def walk(
    config: SimulationConfig,
    views: Views,
    schedule: Schedule,
    customers: Customers,
    catalog: Catalog,
    draws: Draws,
    a0: float,
    c0: float,
    p0: float,
    x_add: np.ndarray | None = None,
) -> Walk:
    """Walk every session with intercepts ``a0`` (cart add), ``c0`` (checkout) and ``p0`` (payment)."""
    n_s = schedule.n
    if x_add is None:
        x_add = add_logits(views, schedule, customers, catalog)
    added = draws.add < sigmoid(np.float32(a0) + x_add)
    lp = catalog.log_price_ratio.astype(np.float32)[views.item]
    cheap = np.where(lp < -0.5, np.float32(0.12), np.float32(0.03))
    qty = 1 + (draws.qty < cheap).astype(np.int32) + (draws.qty < cheap * cheap)
    beta_v = customers.price_sensitivity.astype(np.float32)[schedule.user[views.session]]
    n_added = np.bincount(views.session, weights=added, minlength=n_s)
    removed = added & (n_added[views.session] >= 2)
    removed &= draws.remove < sigmoid(np.float32(-2.0) + np.float32(0.6) * beta_v * lp)
    n_removed = np.bincount(views.session, weights=removed, minlength=n_s)
    emptied = np.flatnonzero((n_removed == n_added) & (n_added > 0))
    if len(emptied):
        # a session that removed everything keeps its first product: someone emptying a cart
        # completely is rare, and it keeps every cart session with something to buy or abandon
        add_idx = np.flatnonzero(added)
        sess_of_add = views.session[add_idx]
        first_sess, first_pos = np.unique(sess_of_add, return_index=True)
        removed[add_idx[first_pos[np.searchsorted(first_sess, emptied)]]] = False
    kept = added & ~removed
    price = catalog.price[views.item]
    value = np.bincount(views.session, weights=np.where(kept, price * qty, 0.0), minlength=n_s)
    cost = np.bincount(
        views.session, weights=np.where(kept, catalog.cost[views.item] * qty, 0.0), minlength=n_s
    )
    n_items = np.bincount(views.session, weights=kept, minlength=n_s).astype(np.int64)
    has_cart = n_added > 0
    log_ref = float(np.mean(np.log(catalog.price)))
    lv = np.where(has_cart, np.log(np.maximum(value, 1e-9)) - log_ref, 0.0)
    user = schedule.user
    beta = customers.price_sensitivity[user]
    x_check = (
        schedule.intent
        - 0.6 * beta * lv
        - (customers.forgetfulness[user] - 0.4)
        + CHECKOUT_DEVICE[schedule.device]
    )
    pay = p0 + 0.3 * schedule.intent - 0.3 * beta * lv + PAY_DEVICE[schedule.device]
    p_check, p_pay = sigmoid(c0 + x_check), sigmoid(pay)
    checkout = has_cart & (draws.checkout < p_check)
    purchase = checkout & (draws.pay < p_pay)
    return Walk(
        added=added,
        qty=qty.astype(np.int32),
        removed=removed,
        has_cart=has_cart,
        cart_value=value,
        cart_cost=cost,
        n_items=n_items,
        log_value_ratio=lv,
        checkout_logit=c0 + x_check,
        pay_logit=pay,
        p_purchase=np.where(has_cart, p_check * p_pay, np.nan),
        checkout=checkout,
        purchase=purchase,
    )


def recovery_probability(schedule: Schedule, customers: Customers, w: Walk) -> np.ndarray:
    """P(the customer comes back and buys an abandoned cart unprompted), for every session."""
    user = schedule.user
    return sigmoid(
        baseline_logit(
            customers.response[user],
            schedule.intent,
            customers.price_sensitivity[user],
            w.log_value_ratio,
            customers.forgetfulness[user],
        )
    )


def _solve(f: Callable[[float], float], target: float, what: str, n: int) -> float:
    """The root of ``f(x) = target`` in the bracket, or the better end when there is none."""
    lo, hi = _BRACKET
    f_lo, f_hi = f(lo) - target, f(hi) - target
    if f_lo * f_hi <= 0:
        return float(brentq(lambda x: f(x) - target, lo, hi, xtol=1e-6))
    best = lo if abs(f_lo) < abs(f_hi) else hi
    if n >= 200:  # tiny samples miss targets by chance; only a real misfit is worth a warning
        warnings.warn(
            f"The simulation cannot reach the target {what} {target:.4g} with these settings "
            f"(closest: {f(best):.4g}). Change the target or the other rates.",
            CartliftWarning,
            stacklevel=4,
        )
    return best


def _pay_offset(c0: float, x_check: np.ndarray, y_pay: np.ndarray, done: float) -> float:
    """The payment intercept at which checkouts complete at rate ``done``, given ``c0``."""
    p_check = sigmoid(c0 + x_check)
    weight = max(float(p_check.sum()), 1e-300)
    return _solve(
        lambda p0: float((p_check * sigmoid(p0 + y_pay)).sum()) / weight, done, "checkout completion", 0
    )


def _abandonment(c0: float, *, x_check: np.ndarray, y_pay: np.ndarray, rec: np.ndarray, done: float) -> float:
    """Expected share of carts abandoned, counting return visits as carts that were bought."""
    lost = 1.0 - sigmoid(c0 + x_check) * sigmoid(_pay_offset(c0, x_check, y_pay, done) + y_pay)
    return float(lost.sum() / (len(lost) + (lost * rec).sum()))


def calibrate(
    config: SimulationConfig,
    views: Views,
    schedule: Schedule,
    customers: Customers,
    catalog: Catalog,
    draws: Draws,
) -> tuple[float, float, float]:
    """Intercepts ``(a0, c0, p0)`` that hit the configured rates in expectation.

    With T the abandonment target, K the conversion target and r the mean chance that an
    abandoned cart is bought in a later visit (which adds a converting session with a cart):

        abandonment = (1 - q) / (1 + (1 - q) r) = T,
        conversion  = c (q + (1 - q) r) / (1 + c (1 - q) r) = K,

    give the purchase rate of carts q and the share of sessions with a cart c. ``a0`` is solved
    for c; then, on the carts that ``a0`` produced, ``c0`` for T with ``p0`` solved inside so
    that checkouts complete at the configured rate; r is updated until stable. Calibration uses
    the first sessions (customers are exchangeable), so it stays cheap.
    """
    m = min(schedule.n, _CALIBRATION_SESSIONS)
    n_views = int(np.searchsorted(views.session, m))
    sub_views = Views(
        views.session[:n_views], views.order[:n_views], views.item[:n_views], views.affinity[:n_views]
    )
    sub = Schedule(*(getattr(schedule, f.name)[:m] for f in fields(Schedule)))
    sub_draws = Draws(
        draws.add[:n_views], draws.qty[:n_views], draws.remove[:n_views], draws.checkout[:m], draws.pay[:m]
    )
    x_add = add_logits(sub_views, sub, customers, catalog)
    t, k, done = config.cart_abandonment_rate, config.conversion_rate, config.checkout_completion

    def cart_share(a0: float) -> float:
        log_none = np.bincount(sub_views.session, weights=-np.logaddexp(0.0, a0 + x_add), minlength=m)
        return float(np.mean(1.0 - np.exp(log_none)))

    r, a0, c0, p0 = 0.15, 0.0, 0.0, 0.0
    for _ in range(4):
        q = 1.0 - t / (1.0 - t * r)
        c = min(k / (q + (1.0 - q) * r - k * (1.0 - q) * r), 1.0 - 1e-9)
        a0 = _solve(cart_share, c, "share of sessions with a cart", m)
        w = walk(config, sub_views, sub, customers, catalog, sub_draws, a0, 0.0, 0.0, x_add)
        carts = np.flatnonzero(w.has_cart)
        if len(carts) == 0:
            return a0, c0, p0
        x_check, y_pay = w.checkout_logit[carts], w.pay_logit[carts]
        rec = recovery_probability(sub, customers, w)[carts]

        abandonment = partial(_abandonment, x_check=x_check, y_pay=y_pay, rec=rec, done=done)
        c0 = _solve(abandonment, t, "cart abandonment rate", len(carts))
        p0 = _pay_offset(c0, x_check, y_pay, done)
        lost = 1.0 - sigmoid(c0 + x_check) * sigmoid(p0 + y_pay)
        r_new = float((lost * rec).sum() / max(lost.sum(), 1e-12))
        if abs(r_new - r) < 1e-3:
            break
        r = r_new
    return a0, c0, p0
