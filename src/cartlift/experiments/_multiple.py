"""Multiple-testing corrections for A/B/n tests, with intervals that agree with the adjusted p-values.

Comparing k variants with one control makes k tests; without a correction the chance of at least
one false winner grows to :math:`1 - (1 - \\alpha)^k`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cartlift.errors import InvalidParameterError

__all__ = ["CORRECTIONS", "adjust_p_values", "interval_alpha"]

CORRECTIONS = ("holm", "bh", "none")


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> np.ndarray:
    """Adjusted p-values: Holm's step-down (family-wise error) or Benjamini-Hochberg (false discovery rate).

    With sorted :math:`p_{(1)} \\le \\dots \\le p_{(m)}`:

    * Holm (1979): :math:`\\tilde p_{(i)} = \\max_{j \\le i} \\min(1, (m - j + 1) p_{(j)})`;
    * Benjamini and Hochberg (1995): :math:`\\tilde p_{(i)} = \\min_{j \\ge i} \\min(1, m p_{(j)} / j)`.

    Rejecting where :math:`\\tilde p < \\alpha` controls the family-wise error (Holm) or the false
    discovery rate (BH) at :math:`\\alpha`. Equal to ``statsmodels.stats.multitest.multipletests``
    with ``method="holm"`` / ``"fdr_bh"``.
    """
    if method not in CORRECTIONS:
        raise InvalidParameterError(
            f"correction must be one of {', '.join(CORRECTIONS)}. Got {method!r} instead."
        )
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or np.any(~np.isfinite(p)):
        raise InvalidParameterError(
            f"p_values must be a 1-d sequence of numbers in [0, 1]. Got {p_values!r} instead."
        )
    m = p.size
    if method == "none" or m <= 1:
        return p.copy()
    order = np.argsort(p, kind="mergesort")
    ranked = p[order]
    ranks = np.arange(1, m + 1)
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - ranks + 1) * ranked))
    else:
        adjusted = np.minimum.accumulate(np.minimum(1.0, m * ranked / ranks)[::-1])[::-1]
    out = np.empty(m)
    out[order] = adjusted
    return out


def interval_alpha(p_value: float, p_adjusted: float, alpha: float, m: int) -> float:
    """The level at which a variant's interval agrees with its adjusted p-value.

    A two-sided interval that inverts a test excludes 0 exactly when :math:`p < \\alpha'`. Taking

    .. math::  \\alpha' = \\alpha \\; p / \\tilde p

    makes it exclude 0 exactly when :math:`\\tilde p < \\alpha`, so the interval and the adjusted
    p-value always tell the same story. For a Bonferroni-type step (:math:`\\tilde p = m p`) this
    is the Bonferroni interval at :math:`\\alpha/m`; without correction it is the plain interval.
    When :math:`p` underflows to 0 the Bonferroni level :math:`\\alpha/m` is used.
    """
    if p_adjusted <= 0 or p_value <= 0:
        return alpha / max(m, 1)
    return float(min(alpha, alpha * p_value / p_adjusted))
