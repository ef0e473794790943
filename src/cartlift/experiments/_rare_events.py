"""The difference of two means when the control's values are a few large purchases among many zeros.

A held-out cart is worth its margin if it is bought and nothing otherwise: the control's mean is a
weighted sum of rare events, :math:`\\bar y_a = \\sum_i w_i x_i` with :math:`w_i = m_i / n_a` (the
cart's margin over the arm's size) and :math:`x_i \\in \\{0, 1\\}`. With a small control (100
held-out carts, some 20 purchases) and margins that run from a few units to hundreds, Welch's
interval fails on one side: when chance leaves the big carts of the control unbought, its mean
*and* its standard deviation come out low together, the interval is too short exactly when the
effect is overstated. On the simulator its 95 % interval covered the true incremental profit in
88 % of 200 seeds, every miss but one on that side; the bootstrap-t (90 %) and BCa (90 %) do no
better, for the sample does not hold the tail they would need.

Here the control's mean gets the gamma interval of a weighted sum of Poisson counts (Fay and Feuer
1997), which knows every control unit's weight, bought or not, with Tiwari, Clegg and Zou's (2006)
modification of the upper limit (``wmtype="tcz"`` of R's ``asht::wspoissonTest``; G4 of Ng, Filardo
and Zheng 2008):

.. math::

    y = \\sum w_i x_i, \\quad v = \\sum w_i^2 x_i, \\quad
    L = G^{-1}_{\\alpha/2}\\Big(\\frac{y^2}{v}, \\frac{v}{y}\\Big), \\quad
    U = G^{-1}_{1-\\alpha/2}\\Big(\\frac{(y + \\bar w)^2}{v + \\overline{w^2}},
        \\frac{v + \\overline{w^2}}{y + \\bar w}\\Big)

(:math:`G^{-1}_q(k, \\theta)` the gamma quantile of shape :math:`k`, scale :math:`\\theta`;
:math:`L = 0` when :math:`y = 0`). The variant's mean (hundreds of carts) gets Student's interval, and
the two are combined by the MOVER (Zou and Donner 2008), as Newcombe combines two Wilson intervals:

.. math::

    L_\\Delta = \\Delta - \\sqrt{(\\bar y_b - l_b)^2 + (U - \\bar y_a)^2}, \\quad
    U_\\Delta = \\Delta + \\sqrt{(u_b - \\bar y_b)^2 + (\\bar y_a - L)^2}

Counting a purchase as Poisson rather than Bernoulli overstates its variance where the chance to
buy is high, so the interval errs wide, not short. On the same 200 seeds it covered the truth in
94 % (96 % without customer drop-out), 8 % wider than Welch's.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

from cartlift.errors import DataError
from cartlift.experiments import _messages as msg
from cartlift.experiments._frequentist import Inference, _check_alpha, degenerate

__all__ = ["rare_event_difference", "weighted_poisson_interval"]


def weighted_poisson_interval(
    counts: ArrayLike, weights: ArrayLike, *, alpha: float = 0.05
) -> tuple[float, float]:
    """Gamma interval of :math:`\\sum_i w_i \\lambda_i` from counts :math:`x_i \\sim` Poisson(:math:`\\lambda_i`).

    Fay and Feuer (1997) with Tiwari, Clegg and Zou's (2006) upper limit (see the module
    docstring); equal to R's ``asht::wspoissonTest(x, w, wmtype="tcz")``. Weights must be >= 0.
    """
    alpha = _check_alpha(alpha)
    x = np.asarray(counts, dtype=float).ravel()
    w = np.asarray(weights, dtype=float).ravel()
    if x.shape != w.shape or x.size == 0:
        raise DataError(
            f"counts and weights must be two non-empty arrays of one length ({x.size} vs {w.size})."
        )
    if not (np.isfinite(x).all() and np.isfinite(w).all()) or (x < 0).any() or (w < 0).any():
        raise DataError("The weighted Poisson interval needs finite counts and weights >= 0.")
    y, v = float(np.sum(w * x)), float(np.sum(w * w * x))
    low = 0.0 if y <= 0 or v <= 0 else float(stats.gamma.ppf(alpha / 2, y * y / v, scale=v / y))
    y_up, v_up = y + float(w.mean()), v + float(np.mean(w * w))
    if y_up <= 0:  # every weight is 0: the sum is 0 whatever the counts
        return 0.0, 0.0
    high = float(stats.gamma.ppf(1 - alpha / 2, y_up * y_up / v_up, scale=v_up / y_up))
    return low, high


def _mover(
    variant: np.ndarray, bought: np.ndarray, weights: np.ndarray, offset: float, alpha: float
) -> tuple[float, float, float]:
    n_a, n_b = bought.size, variant.size
    mean_a = float(np.sum(weights * bought)) / n_a + offset
    low_a, high_a = (b / n_a + offset for b in weighted_poisson_interval(bought, weights, alpha=alpha))
    mean_b = float(variant.mean())
    half_b = float(stats.t.ppf(1 - alpha / 2, n_b - 1) * variant.std(ddof=1) / np.sqrt(n_b))
    diff = mean_b - mean_a
    low = diff - np.hypot(half_b, high_a - mean_a)
    high = diff + np.hypot(half_b, mean_a - low_a)
    return diff, low, high


def rare_event_difference(
    variant: ArrayLike,
    control_bought: ArrayLike,
    control_weights: ArrayLike,
    *,
    control_offset: ArrayLike | float = 0.0,
    alpha: float = 0.05,
) -> Inference:
    """Interval of :math:`\\bar y_b - \\bar y_a` where each control unit is worth its weight if bought.

    Parameters
    ----------
    variant : array-like of shape (n_b,)
        The variant's per-unit values (any sign).
    control_bought : array-like of bool, shape (n_a,)
        Whether each control unit was bought (its event happened).
    control_weights : array-like of shape (n_a,)
        Each control unit's value if bought (>= 0), known for the unbought units too (a cart's margin).
    control_offset : array-like of shape (n_a,) or float
        A fixed part of each control unit's value, paid bought or not (a message's cost); the
        control's value is ``bought * weight + offset``.
    alpha : float
        Two-sided level.

    Returns
    -------
    Inference
        ``method="rare_event_mover"``; ``std_error`` is the half-width over the normal quantile (for
        display), ``p_value`` the smallest level whose interval excludes 0 (the interval inverted).

    References
    ----------
    Fay and Feuer (1997), "Confidence intervals for directly standardized rates: a method based on
    the gamma distribution", Statistics in Medicine 16. Tiwari, Clegg and Zou (2006), "Efficient
    interval estimation for age-adjusted cancer rates", Statistical Methods in Medical Research 15.
    Zou and Donner (2008), "Construction of confidence limits about effect measures: a general
    approach", Statistics in Medicine 27.
    """
    alpha = _check_alpha(alpha)
    b = np.asarray(variant, dtype=float).ravel()
    x = np.asarray(control_bought, dtype=bool).ravel()
    w = np.asarray(control_weights, dtype=float).ravel()
    offset = np.broadcast_to(np.asarray(control_offset, dtype=float), x.shape)
    if w.shape != x.shape:
        raise DataError(f"control_bought and control_weights differ in length ({x.size} vs {w.size}).")
    if not (np.isfinite(b).all() and np.isfinite(w).all() and np.isfinite(offset).all()):
        raise DataError("The interval needs finite values; remove missing or infinite values first.")
    if (w < 0).any():
        raise DataError(
            "Control weights (a unit's value if bought) must be >= 0; use difference_test otherwise."
        )
    if x.size < 2 or b.size < 2:
        return degenerate("rare_event_mover", msg.TOO_FEW_UNITS, alpha, n_control=x.size, n_variant=b.size)
    shift = float(offset.mean())
    diff, low, high = _mover(b, x, w, shift, alpha)
    if low == high:
        return degenerate("rare_event_mover", msg.ZERO_VARIANCE, alpha)

    def excludes_zero(level: float) -> float:
        _, lo, hi = _mover(b, x, w, shift, level)
        return lo if diff > 0 else -hi  # > 0 while the interval at this level excludes 0

    if excludes_zero(1.0 - 1e-12) <= 0:
        p = 1.0
    elif excludes_zero(1e-12) > 0:
        p = 0.0
    else:
        p = float(optimize.brentq(excludes_zero, 1e-12, 1.0 - 1e-12, xtol=1e-10))
    se = (high - low) / (2 * stats.norm.ppf(1 - alpha / 2))
    return Inference(
        float(diff),
        float(se),
        float(low),
        float(high),
        p,
        float("nan"),
        float("nan"),
        "rare_event_mover",
        alpha,
    )
