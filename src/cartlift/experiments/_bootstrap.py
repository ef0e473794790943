"""Nonparametric bootstrap of the difference (or relative lift) of two means.

The only analysis here that needs unit-level values: resampling cannot be done from sums. It is
the check to reach for when a metric is heavy-tailed (revenue per visitor with a few large
orders) and the normal approximation behind Welch's test is in doubt.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from cartlift._random import RandomState, check_random_state
from cartlift.errors import DataError, InvalidParameterError
from cartlift.experiments import _messages as msg
from cartlift.experiments._frequentist import Inference, _check_alpha, degenerate

__all__ = ["bootstrap_test"]

_CHUNK_CELLS = 4_000_000  # resample this many draws at a time: bounded memory for any n


def _resampled_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    n = values.size
    out = np.empty(n_resamples)
    step = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, n_resamples, step):
        stop = min(start + step, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def bootstrap_test(
    control: ArrayLike,
    variant: ArrayLike,
    *,
    relative: bool = True,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    random_state: RandomState = None,
) -> Inference:
    """Percentile bootstrap interval and p-value of :math:`\\bar y_b - \\bar y_a` (or :math:`\\bar y_b/\\bar y_a - 1`).

    Each arm is resampled with replacement on its own (the arms are independent samples);
    :math:`\\theta^*_1..\\theta^*_B` are the resampled effects. The interval is the
    :math:`(\\alpha/2, 1-\\alpha/2)` percentiles of :math:`\\theta^*`; the p-value inverts the
    same interval, :math:`p = \\min(1, 2 (1 + \\min(\\#\\{\\theta^* \\le 0\\}, \\#\\{\\theta^* \\ge 0\\})) / (B + 1))`,
    so the interval excludes 0 when :math:`p < \\alpha` (up to the resolution :math:`1/B`).

    Parameters
    ----------
    control, variant : array-like of shape (n,)
        Per-unit metric values of each arm.
    relative : bool
        Bootstrap the relative lift instead of the difference.
    alpha : float
        Two-sided level of the interval.
    n_resamples : int
        Bootstrap replicates :math:`B`.
    random_state : int, Generator or None
        Seed of the resampling.

    References
    ----------
    Efron and Tibshirani (1993), *An Introduction to the Bootstrap*, chapters 13 and 16.
    """
    alpha = _check_alpha(alpha)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 100:
        raise InvalidParameterError(f"n_resamples must be an int >= 100. Got {n_resamples!r} instead.")
    a = np.asarray(control, dtype=float).ravel()
    b = np.asarray(variant, dtype=float).ravel()
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("The bootstrap needs finite metric values; remove missing or infinite values first.")
    method = "bootstrap_relative" if relative else "bootstrap"
    if a.size < 2 or b.size < 2:
        return degenerate(method, msg.TOO_FEW_UNITS, alpha, n_control=a.size, n_variant=b.size)
    if relative and a.mean() == 0:
        return degenerate(method, msg.ZERO_CONTROL_MEAN, alpha)
    if a.var() == 0 and b.var() == 0:
        return degenerate(method, msg.ZERO_VARIANCE, alpha)
    rng = check_random_state(random_state)
    ma = _resampled_means(a, n_resamples, rng)
    mb = _resampled_means(b, n_resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = mb / ma - 1 if relative else mb - ma
    theta = theta[np.isfinite(theta)]
    estimate = b.mean() / a.mean() - 1 if relative else b.mean() - a.mean()
    low, high = np.quantile(theta, [alpha / 2, 1 - alpha / 2])
    # (count + 1) / (B + 1): a bootstrap p-value is never exactly 0 (Davison and Hinkley 1997, eq. 4.11)
    tail = min(np.sum(theta <= 0), np.sum(theta >= 0))
    p = min(1.0, 2 * (tail + 1) / (theta.size + 1))
    return Inference(
        float(estimate),
        float(theta.std(ddof=1)),
        float(low),
        float(high),
        float(p),
        float("nan"),
        float("nan"),
        method,
        alpha,
    )
