"""Sufficient statistics of one arm, as frozen dataclasses, and the estimates derived from them.

Every analysis in :mod:`cartlift.experiments` starts from these few sums, computed in SQL (see
:mod:`cartlift.experiments._sql`), so a 10M-unit experiment costs one aggregate query and the maths
never touches unit-level rows (the design of GrowthBook's ``gbstats/models/statistics.py``).

* :class:`SampleStats` -- ``n``, ``sum``, ``sum_squares`` of a per-unit metric (conversion,
  revenue per visitor, ...).
* :class:`JointStats` -- two per-unit columns ``y`` and ``x`` with their cross term ``sum_xy``;
  :class:`RatioStats` reads them as numerator / denominator (revenue per session),
  :class:`CovariateStats` as metric / pre-period covariate (CUPED).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cartlift.errors import DataError

__all__ = ["ArmEstimate", "CovariateStats", "JointStats", "RatioStats", "SampleStats"]


def _check_counts(owner: object, n: int, **sums: float) -> None:
    name = type(owner).__name__
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise DataError(f"{name}.n must be a count (an int >= 0). Got {n!r} instead.")
    for field, value in sums.items():
        if not np.isfinite(value):
            raise DataError(
                f"{name}.{field} must be a finite number. Got {value!r} instead; "
                "remove infinite or missing metric values before aggregating."
            )


@dataclass(frozen=True)
class SampleStats:
    """Sufficient statistics of one metric in one arm.

    Parameters
    ----------
    n : int
        Units in the arm.
    sum : float
        :math:`\\sum_i y_i`.
    sum_squares : float
        :math:`\\sum_i y_i^2`.
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        _check_counts(self, self.n, sum=self.sum, sum_squares=self.sum_squares)

    @classmethod
    def from_values(cls, values: ArrayLike) -> SampleStats:
        """The statistics of a 1-d array of per-unit values (for tests and small data)."""
        y = np.asarray(values, dtype=float).ravel()
        return cls(n=int(y.size), sum=float(y.sum()), sum_squares=float(y @ y))

    @classmethod
    def from_counts(cls, successes: int, n: int) -> SampleStats:
        """The statistics of a 0/1 metric with ``successes`` ones among ``n`` units."""
        if not 0 <= successes <= n:
            raise DataError(f"successes must be in [0, n={n}]. Got {successes!r} instead.")
        return cls(n=int(n), sum=float(successes), sum_squares=float(successes))

    @property
    def mean(self) -> float:
        """:math:`\\bar y = \\sum y / n` (0 for an empty arm)."""
        return self.sum / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Unbiased sample variance :math:`(\\sum y^2 - (\\sum y)^2/n) / (n - 1)`, never negative."""
        if self.n < 2:
            return 0.0
        return max((self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1), 0.0)

    @property
    def is_binary(self) -> bool:
        """True when the sums are those of a 0/1 metric (sum of squares equals sum)."""
        return bool(self.sum == self.sum_squares and 0 <= self.sum <= self.n)

    def __add__(self, other: SampleStats) -> SampleStats:
        return SampleStats(self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares)


@dataclass(frozen=True)
class JointStats:
    """Sufficient statistics of two per-unit columns ``y`` and ``x`` in one arm.

    Parameters
    ----------
    n : int
        Units in the arm.
    sum_y, sum_squares_y : float
        :math:`\\sum y_i`, :math:`\\sum y_i^2`.
    sum_x, sum_squares_x : float
        :math:`\\sum x_i`, :math:`\\sum x_i^2`.
    sum_xy : float
        The cross term :math:`\\sum x_i y_i`.
    """

    n: int
    sum_y: float
    sum_squares_y: float
    sum_x: float
    sum_squares_x: float
    sum_xy: float

    def __post_init__(self) -> None:
        _check_counts(
            self,
            self.n,
            sum_y=self.sum_y,
            sum_squares_y=self.sum_squares_y,
            sum_x=self.sum_x,
            sum_squares_x=self.sum_squares_x,
            sum_xy=self.sum_xy,
        )

    @classmethod
    def from_values(cls, y: ArrayLike, x: ArrayLike) -> Any:
        """The statistics of two aligned 1-d arrays (returns an instance of the calling class)."""
        yy = np.asarray(y, dtype=float).ravel()
        xx = np.asarray(x, dtype=float).ravel()
        if yy.shape != xx.shape:
            raise DataError(f"y and x must have the same length. Got {yy.size} and {xx.size} instead.")
        return cls(
            int(yy.size), float(yy.sum()), float(yy @ yy), float(xx.sum()), float(xx @ xx), float(xx @ yy)
        )

    @property
    def y(self) -> SampleStats:
        """The statistics of ``y`` alone."""
        return SampleStats(self.n, self.sum_y, self.sum_squares_y)

    @property
    def x(self) -> SampleStats:
        """The statistics of ``x`` alone."""
        return SampleStats(self.n, self.sum_x, self.sum_squares_x)

    @property
    def covariance(self) -> float:
        """Unbiased sample covariance :math:`(\\sum xy - \\sum x \\sum y / n) / (n - 1)`."""
        if self.n < 2:
            return 0.0
        return (self.sum_xy - self.sum_x * self.sum_y / self.n) / (self.n - 1)

    def __add__(self, other: JointStats) -> JointStats:
        return JointStats(
            self.n + other.n,
            self.sum_y + other.sum_y,
            self.sum_squares_y + other.sum_squares_y,
            self.sum_x + other.sum_x,
            self.sum_squares_x + other.sum_squares_x,
            self.sum_xy + other.sum_xy,
        )


@dataclass(frozen=True)
class RatioStats(JointStats):
    """A ratio metric: ``y`` is the numerator (revenue), ``x`` the denominator (sessions)."""


@dataclass(frozen=True)
class CovariateStats(JointStats):
    """A metric ``y`` with a pre-period covariate ``x`` for CUPED variance reduction."""


@dataclass(frozen=True)
class ArmEstimate:
    """An arm's point estimate and the variance of that estimate (not of one unit).

    Every comparison (Welch, relative lift, Bayesian normal, sequential) needs only these three
    numbers, whatever the metric kind (mean, ratio, CUPED-adjusted mean).
    """

    mean: float
    variance: float
    n: int


def mean_estimate(stats: SampleStats) -> ArmEstimate:
    """:math:`(\\bar y, s^2/n, n)` of a plain mean."""
    return ArmEstimate(stats.mean, stats.variance / stats.n if stats.n else 0.0, stats.n)


def ratio_estimate(stats: JointStats) -> ArmEstimate:
    """The ratio :math:`R = \\sum y / \\sum x` and its delta-method variance.

    .. math::

        \\widehat{\\operatorname{Var}}(R) = \\frac{1}{n}\\left(\\frac{s_y^2}{\\bar x^2}
        - \\frac{2 \\bar y\\, s_{xy}}{\\bar x^3} + \\frac{\\bar y^2 s_x^2}{\\bar x^4}\\right)

    References
    ----------
    Deng, Knoblich and Lu (2018), "Applying the Delta Method in Metric Analytics: A Practical
    Guide with Novel Ideas", KDD, section 3.2.
    """
    n = stats.n
    if n == 0 or stats.sum_x == 0:
        return ArmEstimate(0.0, 0.0, n)
    mx, my = stats.sum_x / n, stats.sum_y / n
    var = (
        stats.y.variance / mx**2 - 2 * my * stats.covariance / mx**3 + my**2 * stats.x.variance / mx**4
    ) / n
    return ArmEstimate(my / mx, max(var, 0.0), n)


def cuped_theta(pooled: JointStats) -> float:
    """The CUPED coefficient :math:`\\theta = \\operatorname{cov}(y, x) / \\operatorname{var}(x)` on all arms pooled.

    Pooling keeps :math:`\\theta` independent of the assignment, so the adjusted difference stays
    unbiased (Deng, Xu, Kohavi and Walker 2013, "Improving the Sensitivity of Online Controlled
    Experiments by Utilizing Pre-Experiment Data", WSDM, section 3.3). Returns 0 when ``x`` is constant.
    """
    var_x = pooled.x.variance
    return pooled.covariance / var_x if var_x > 0 else 0.0


def cuped_estimate(stats: JointStats, theta: float, pooled_mean_x: float) -> ArmEstimate:
    """The CUPED-adjusted mean :math:`\\bar y - \\theta(\\bar x - \\bar x_{pooled})` and its variance.

    .. math::

        \\operatorname{Var} = \\frac{s_y^2 - 2\\theta s_{xy} + \\theta^2 s_x^2}{n}

    which is the variance of the per-unit adjusted values :math:`y_i - \\theta(x_i - \\bar x_{pooled})`.
    """
    n = stats.n
    if n == 0:
        return ArmEstimate(0.0, 0.0, 0)
    mean = stats.sum_y / n - theta * (stats.sum_x / n - pooled_mean_x)
    unit_var = stats.y.variance - 2 * theta * stats.covariance + theta**2 * stats.x.variance
    return ArmEstimate(mean, max(unit_var, 0.0) / n, n)
