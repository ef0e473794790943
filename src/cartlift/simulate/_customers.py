"""Customers and their latent traits: tastes, price sensitivity, intent, forgetfulness, consent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cartlift.simulate._config import DEVICES, RESPONSE_TYPES, SimulationConfig

__all__ = ["Customers", "draw_lifetimes", "make_customers"]

_MAX_RATE = 4.0  # visits a day; keeps the heaviest gamma draws plausible


@dataclass(frozen=True)
class Customers:
    """One row per customer; all arrays have length ``n_users`` (``cat_pref`` and ``factors`` 2-D).

    Attributes
    ----------
    ids : ndarray of str
        ``user_id`` values (``u0`` ...).
    existing : ndarray of bool
        Bought before the simulation started, so "returning" from the first session.
    arrival : ndarray of float
        Day (from ``start``) of the first possible visit: 0 for existing customers.
    rate : ndarray of float
        Mean visits per day.
    device : ndarray of int
        Main device, an index into ``DEVICES``.
    email, sms : ndarray of bool
        Consent to be contacted by e-mail / SMS.
    cat_pref : ndarray of float, shape (n_users, n_categories)
        Dirichlet category tastes (rows sum to 1): the chance a visit is about each category.
    factors : ndarray of float32, shape (n_users, n_factors)
        Latent taste vectors (affinity to a product = dot product with its factors).
    price_sensitivity : ndarray of float
        How strongly expensive products and carts put the customer off (log-normal, mean ~1.1).
    intent : ndarray of float
        Purchase intent on the logit scale (shifts cart adds and checkout).
    forgetfulness : ndarray of float
        In (0, 1): forgetful customers abandon more and respond more to reminders.
    urgency : ndarray of float
        In (0, 1): how much a limited-time offer moves the customer.
    response : ndarray of int
        Response type, an index into ``RESPONSE_TYPES``.
    harm : ndarray of float
        For sleeping dogs, how much (logit) being contacted lowers the chance to buy.
    lifetime : ndarray of float
        Days from ``arrival`` until the customer drops out and never visits again
        (exponential, at a gamma-distributed rate per customer: the Pareto/NBD drop-out).
    spend : ndarray of float
        The customer's spend shift ``s``, normal with sd ``spend_spread`` (zeros by default): a
        viewed product is added with ``s (0.5 + lp)`` more log-odds, so a customer with ``s > 0``
        adds more and dearer products (``lp`` its log price relative to its category's median)
        and spends more per order.
    """

    ids: np.ndarray
    existing: np.ndarray
    arrival: np.ndarray
    rate: np.ndarray
    device: np.ndarray
    email: np.ndarray
    sms: np.ndarray
    cat_pref: np.ndarray
    factors: np.ndarray
    price_sensitivity: np.ndarray
    intent: np.ndarray
    forgetfulness: np.ndarray
    urgency: np.ndarray
    response: np.ndarray
    harm: np.ndarray
    lifetime: np.ndarray
    spend: np.ndarray

    @property
    def n(self) -> int:
        """Number of customers."""
        return len(self.ids)


def make_customers(config: SimulationConfig, rng: np.random.Generator) -> Customers:
    """Draw the customers of ``config`` from ``rng``."""
    n, days, k = config.n_users, config.n_days, config.n_factors
    shares = np.array([c.share for c in config.categories], dtype=float)
    alpha = config.taste_concentration * len(shares) * shares / shares.sum()
    cat_pref = rng.dirichlet(alpha, n)
    # tiny concentrations underflow to exact zeros; a floor keeps log-tastes finite
    cat_pref = np.maximum(cat_pref, 1e-9)
    cat_pref /= cat_pref.sum(axis=1, keepdims=True)

    existing = rng.random(n) < config.returning_share
    arrival = np.where(existing, 0.0, rng.random(n) * days)
    shape = 0.8  # gamma shape < 1: many occasional visitors, a few heavy ones
    rate = np.minimum(rng.gamma(shape, config.sessions_per_day / shape, n), _MAX_RATE)
    device_p = np.array([config.device_mix[d] for d in DEVICES], dtype=float)
    response_p = np.array([config.response_mix[r] for r in RESPONSE_TYPES], dtype=float)
    return Customers(
        ids=np.array([f"u{i}" for i in range(n)], dtype=object),
        existing=existing,
        arrival=arrival,
        rate=rate,
        device=rng.choice(len(DEVICES), n, p=device_p / device_p.sum()),
        email=rng.random(n) < config.email_consent_rate,
        sms=rng.random(n) < config.sms_consent_rate,
        cat_pref=cat_pref,
        factors=rng.normal(0.0, 1.0, (n, k)).astype(np.float32),
        price_sensitivity=rng.lognormal(0.0, 0.5, n),
        intent=rng.normal(0.0, 0.8, n),
        forgetfulness=rng.beta(2.0, 3.0, n),
        urgency=rng.beta(2.0, 2.0, n),
        response=rng.choice(len(RESPONSE_TYPES), n, p=response_p / response_p.sum()),
        harm=rng.uniform(0.4, 1.2, n),
        # drawn last, so every trait above keeps its draws from the seed
        lifetime=draw_lifetimes(config, n, rng),
        # after the lifetimes and only when asked for, so a store without it keeps every draw
        spend=rng.normal(0.0, config.spend_spread, n) if config.spend_spread > 0 else np.zeros(n),
    )


def draw_lifetimes(config: SimulationConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """Each customer's days until drop-out: exponential at rate ``mu ~ Gamma(s, beta)``.

    With ``s = config.dropout_shape`` and mean rate ``1 / config.mean_lifetime_days`` (so
    ``beta = s * mean_lifetime_days``), lifetimes follow the Pareto/NBD model's drop-out (Schmittlein,
    Morrison and Colombo 1987), a Lomax(s, beta) distribution: a few customers leave within days,
    many stay for months.
    ``mean_lifetime_days = inf`` keeps everyone (no drop-out).
    """
    if not np.isfinite(config.mean_lifetime_days):
        return np.full(n, np.inf)
    mu = rng.gamma(config.dropout_shape, 1.0 / (config.dropout_shape * config.mean_lifetime_days), n)
    return rng.exponential(1.0, n) / mu
