"""Small statistics shared by funnels and abandonment: Wilson intervals, chi-square, Holm, effect sizes.

Pure functions on counts (the sufficient statistics, computed in SQL), so each can be checked
against scipy / statsmodels on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from cartlift.errors import InvalidParameterError

__all__ = [
    "ChiSquare",
    "chi_square",
    "cliffs_delta",
    "cramers_v",
    "holm",
    "wilson_interval",
]


def wilson_interval(
    successes: int, trials: int, confidence: float = 0.95
) -> tuple[float | None, float | None]:
    r"""The Wilson score interval of a binomial proportion.

    .. math::

        \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}},
        \qquad z = \Phi^{-1}\!\left(\tfrac{1 + \text{confidence}}{2}\right)

    Unlike the normal (Wald) interval it stays inside [0, 1] and keeps its coverage for small
    counts and rates near 0 or 1 (Wilson 1927; Brown, Cai & DasGupta 2001, *Statistical
    Science* 16(2)), which funnels have at their later steps.

    Parameters
    ----------
    successes, trials : int
        ``0 <= successes <= trials``.
    confidence : float
        In (0, 1).

    Returns
    -------
    (low, high) : tuple of float, or (None, None) when ``trials == 0`` (no rate to bound).
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise InvalidParameterError(
            f"wilson_interval needs 0 <= successes <= trials. Got successes={successes}, trials={trials}."
        )
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"confidence must be in (0, 1). Got {confidence!r} instead.")
    if trials == 0:
        return None, None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    n = float(trials)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # clip float round-off at the ends (0 successes must give exactly 0)
    return max(0.0, centre - half), min(1.0, centre + half)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    r"""Holm's step-down adjustment of p-values (family-wise error rate), None passed through.

    With the m available p-values sorted, :math:`p_{(1)} \le \dots \le p_{(m)}`, the adjusted
    values are :math:`\tilde p_{(i)} = \min\{1, \max_{j \le i} (m - j + 1)\, p_{(j)}\}`
    (Holm 1979, *Scand. J. Statist.* 6(2)). Uniformly more powerful than Bonferroni and valid
    under any dependence between the tests.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    m = len(idx)
    order = sorted(idx, key=lambda i: float(p_values[i]))  # type: ignore[arg-type]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


@dataclass(frozen=True)
class ChiSquare:
    """Pearson's chi-square test of independence on a contingency table.

    ``p_value`` is None (with ``note`` saying why) when the table has an empty row or column,
    where the statistic is undefined.
    """

    statistic: float | None
    dof: int
    p_value: float | None
    cramers_v: float | None
    small_expected: int
    note: str | None = None


def chi_square(table: np.ndarray | Sequence[Sequence[int]]) -> ChiSquare:
    r"""Pearson's chi-square test of independence (no continuity correction).

    .. math:: X^2 = \sum_{ij} \frac{(O_{ij} - E_{ij})^2}{E_{ij}}, \quad
              E_{ij} = \frac{O_{i\cdot} O_{\cdot j}}{O_{\cdot\cdot}}, \quad
              \text{dof} = (r-1)(c-1)

    Rows and columns that are entirely zero are dropped first (they carry no information).
    ``small_expected`` counts cells with :math:`E_{ij} < 5`, where the chi-square
    approximation is rough (Cochran 1954). Cramér's V is :math:`\sqrt{X^2 / (n (\min(r, c) - 1))}`.
    """
    obs = np.asarray(table, dtype=float)
    if obs.ndim != 2:
        raise InvalidParameterError(f"chi_square needs a 2-D table. Got shape {obs.shape} instead.")
    obs = obs[obs.sum(axis=1) > 0][:, obs.sum(axis=0) > 0]
    r, c = obs.shape if obs.size else (0, 0)
    if r < 2 or c < 2:
        return ChiSquare(
            None, 0, None, None, 0, note="fewer than two non-empty rows or columns: nothing to compare"
        )
    n = obs.sum()
    expected = np.outer(obs.sum(axis=1), obs.sum(axis=0)) / n
    statistic = float(((obs - expected) ** 2 / expected).sum())
    dof = (r - 1) * (c - 1)
    p = float(stats.chi2.sf(statistic, dof))
    v = math.sqrt(statistic / (n * (min(r, c) - 1)))
    small = int((expected < 5).sum())
    note = f"{small} cells have an expected count below 5: the p-value is approximate" if small else None
    return ChiSquare(statistic, dof, p, v, small, note)


def cramers_v(table: np.ndarray | Sequence[Sequence[int]]) -> float | None:
    """Cramér's V of a contingency table (0 = independent, 1 = perfectly associated)."""
    return chi_square(table).cramers_v


def cliffs_delta(x: np.ndarray, y: np.ndarray) -> float | None:
    r"""Cliff's delta: :math:`P(X > Y) - P(X < Y)` for one draw from each group, in [-1, 1].

    Computed from the Mann-Whitney statistic, :math:`\delta = 2U / (n_x n_y) - 1` with ties
    counted half (Cliff 1993, *Psychological Bulletin* 114(3)); it equals the rank-biserial
    correlation. Robust to the long right tails of cart values. None when a group is empty.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size == 0 or y.size == 0:
        return None
    ranks = stats.rankdata(np.concatenate([x, y]))
    u = ranks[: x.size].sum() - x.size * (x.size + 1) / 2
    return float(2 * u / (x.size * y.size) - 1)
