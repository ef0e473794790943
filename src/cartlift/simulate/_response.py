"""How a customer reacts to each action on an abandoned cart: the potential outcomes.

For abandoned cart ``i`` and action ``a`` the true chance to buy the cart within the outcome
window is

    p_ia = sigmoid(b_i + tau_ia),
    b_i  = base[type_i] + 0.5 intent_i - 0.4 beta_i log(value_i / ref) - 1.2 (forget_i - 0.4),

where ``b_i`` is the baseline ("nothing": the customer comes back by themselves) and the uplift
``tau_ia`` depends on the response type:

- persuadable: a reminder helps forgetful customers (``r = 0.6 + 1.2 forget``; e-mail 24 h later
  0.7 r, SMS 1.25 r); coupons add ``0.9 beta k / 10`` for a k % coupon on top of 0.8 r (so
  price-sensitive customers respond most and bigger coupons help more); a limited-time offer adds
  ``0.9 beta (0.5 + urgency)``; a recommendation block adds ``1.0 (1 - max category taste)``.
- sleeping dog: every contact lowers the logit by ``harm * intrusiveness(a)`` (SMS most).
- sure thing, lost cause: no effect (``tau = 0``): the first buys anyway, the second never.

A customer who has not consented to the action's channel never receives it: ``tau = 0``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from cartlift.simulate._config import ACTION_CHANNELS, ACTIONS, RESPONSE_TYPES

__all__ = ["action_effects", "baseline_logit", "sigmoid"]

RESPONSE_BASE = np.array([-2.3, 1.2, -4.5, -1.2])
"""Baseline recovery logit of each of ``RESPONSE_TYPES``."""
_INTRUSIVENESS = {
    "reminder_email_1h": 1.0,
    "reminder_email_24h": 0.8,
    "reminder_sms_1h": 1.4,
    "coupon_5": 0.9,
    "coupon_10": 0.9,
    "coupon_15": 0.9,
    "limited_time_offer": 1.1,
    "recommendation_block": 1.0,
}
_PERSUADABLE = RESPONSE_TYPES.index("persuadable")
_DOG = RESPONSE_TYPES.index("sleeping_dog")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-x))``, without overflow warnings."""
    return np.asarray(expit(x))


def baseline_logit(
    response: np.ndarray,
    intent: np.ndarray,
    price_sensitivity: np.ndarray,
    log_value_ratio: np.ndarray,
    forgetfulness: np.ndarray,
) -> np.ndarray:
    """Logit of buying an abandoned cart within the window when the store does nothing."""
    return (
        RESPONSE_BASE[response]
        + 0.5 * intent
        - 0.4 * price_sensitivity * log_value_ratio
        - 1.2 * (forgetfulness - 0.4)
    )


def action_effects(
    response: np.ndarray,
    email: np.ndarray,
    sms: np.ndarray,
    forgetfulness: np.ndarray,
    price_sensitivity: np.ndarray,
    urgency: np.ndarray,
    breadth: np.ndarray,
    harm: np.ndarray,
) -> np.ndarray:
    """True uplift on the logit scale of every action, shape (n_carts, len(ACTIONS)).

    Column 0 (``nothing``) is zero. See the module docstring for the formulas.
    """
    n = len(response)
    reminder = 0.6 + 1.2 * forgetfulness
    beta = price_sensitivity
    persuade = {
        "reminder_email_1h": reminder,
        "reminder_email_24h": 0.7 * reminder,
        "reminder_sms_1h": 1.25 * reminder,
        "coupon_5": 0.8 * reminder + 0.9 * beta * 0.5,
        "coupon_10": 0.8 * reminder + 0.9 * beta * 1.0,
        "coupon_15": 0.8 * reminder + 0.9 * beta * 1.5,
        "limited_time_offer": 0.8 * reminder + 0.9 * beta * (0.5 + urgency),
        "recommendation_block": 0.8 * reminder + 1.0 * breadth,
    }
    reach = {"email": email, "sms": sms, "any": email | sms}
    effects = np.zeros((n, len(ACTIONS)))
    is_persuadable = response == _PERSUADABLE
    is_dog = response == _DOG
    for j, action in enumerate(ACTIONS[1:], start=1):
        tau = np.where(is_persuadable, persuade[action], 0.0) - np.where(
            is_dog, harm * _INTRUSIVENESS[action], 0.0
        )
        effects[:, j] = np.where(reach[ACTION_CHANNELS[action]], tau, 0.0)
    return effects
