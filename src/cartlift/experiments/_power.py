"""Power, sample size, minimum detectable effect and expected duration of a test.

Normal approximation for a two-sided test of the difference of two means, the method of most
online calculators (Evan Miller, Optimizely) and of ``statsmodels.stats.power.NormalIndPower``:

.. math::

    \\text{power}(n) = \\Phi\\left(\\frac{|\\delta|}{SE} - z_{1-\\alpha/2}\\right)
                     + \\Phi\\left(-\\frac{|\\delta|}{SE} - z_{1-\\alpha/2}\\right), \\qquad
    SE = \\sqrt{\\frac{\\sigma_a^2}{n} + \\frac{\\sigma_b^2}{r n}}

with :math:`\\sigma^2 = p(1 - p)` for a conversion rate (evaluated at the baseline and at the
baseline plus the effect) and a common :math:`\\sigma` for a continuous metric; ``r`` is the
ratio of units in each variant to units in the control.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from cartlift.errors import InvalidParameterError

__all__ = [
    "PowerPlan",
    "detectable",
    "expected_duration",
    "minimum_detectable_effect",
    "plan",
    "power",
    "sample_size",
]


def _positive(name: str, value: float, *, strict: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or (value <= 0 if strict else value < 0):
        raise InvalidParameterError(
            f"{name} must be a number {'>' if strict else '>='} 0. Got {value!r} instead."
        )
    return float(value)


def _level(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise InvalidParameterError(f"{name} must be a float in (0, 1). Got {value!r} instead.")
    return float(value)


def _sigmas(baseline: float, delta: float, sd: float | None) -> tuple[float, float]:
    if sd is None:
        p2 = baseline + delta
        if not 0 < baseline < 1 or not 0 <= p2 <= 1:
            raise InvalidParameterError(
                "For a conversion rate the baseline must be in (0, 1) and baseline + effect in [0, 1]. "
                f"Got baseline={baseline!r}, effect={delta!r} instead; pass sd= for a continuous metric."
            )
        return math.sqrt(baseline * (1 - baseline)), math.sqrt(p2 * (1 - p2))
    return sd, sd


def _absolute(baseline: float, effect: float, relative: bool) -> float:
    return effect * baseline if relative else effect


def power(
    baseline: float,
    effect: float,
    n_per_variant: float,
    *,
    sd: float | None = None,
    relative: bool = True,
    alpha: float = 0.05,
    ratio: float = 1.0,
) -> float:
    """Probability that a two-sided test at level ``alpha`` detects ``effect`` with ``n_per_variant`` control units.

    Parameters
    ----------
    baseline : float
        Control mean (a conversion rate in (0, 1) when ``sd`` is None).
    effect : float
        The effect to detect, relative to the baseline (0.05 = +5 %) or absolute.
    n_per_variant : float
        Units in the control; each variant gets ``ratio`` times as many.
    sd : float, optional
        Per-unit standard deviation of a continuous metric; None for a conversion rate.
    """
    return _power(baseline, effect, n_per_variant, sd=sd, relative=relative, alpha=alpha, ratio=ratio)


def _power(
    baseline: float,
    effect: float,
    n_per_variant: float,
    *,
    sd: float | None,
    relative: bool,
    alpha: float,
    ratio: float,
) -> float:
    _positive("n_per_variant", n_per_variant)
    _positive("ratio", ratio)
    alpha = _level("alpha", alpha)
    delta = _absolute(baseline, effect, relative)
    s1, s2 = _sigmas(baseline, delta, None if sd is None else _positive("sd", sd))
    se = math.sqrt(s1**2 / n_per_variant + s2**2 / (ratio * n_per_variant))
    z = stats.norm.isf(alpha / 2)
    lam = abs(delta) / se
    return float(stats.norm.cdf(lam - z) + stats.norm.cdf(-lam - z))


def sample_size(
    baseline: float,
    effect: float,
    *,
    sd: float | None = None,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> float:
    """Control units needed to reach ``power`` (not rounded; round up to plan).

    Starts from the closed form :math:`n_0 = (z_{1-\\alpha/2} + z_{power})^2 (\\sigma_a^2 + \\sigma_b^2/r)/\\delta^2`
    and solves :func:`power` exactly (the far tail adds a little power).
    """
    target = _level("power", power)
    alpha = _level("alpha", alpha)
    delta = _absolute(baseline, effect, relative)
    if delta == 0:
        raise InvalidParameterError("effect must be non-zero: no sample size detects an effect of 0.")
    s1, s2 = _sigmas(baseline, delta, None if sd is None else _positive("sd", sd))
    n0 = (stats.norm.isf(alpha / 2) + stats.norm.ppf(target)) ** 2 * (s1**2 + s2**2 / ratio) / delta**2
    f = _power_of(baseline, effect, sd, relative, alpha, ratio, target)
    lo, hi = n0 / 2, n0 * 2
    while f(lo) > 0:
        lo /= 2
    return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-14))


def _power_of(
    baseline: float,
    effect: float,
    sd: float | None,
    relative: bool,
    alpha: float,
    ratio: float,
    target: float,
) -> Any:
    return lambda n: _power(baseline, effect, n, sd=sd, relative=relative, alpha=alpha, ratio=ratio) - target


def minimum_detectable_effect(
    baseline: float,
    n_per_variant: float,
    *,
    sd: float | None = None,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
) -> float:
    """Smallest positive effect detected with probability ``power`` (relative or absolute).

    Returns ``inf`` when even the largest possible effect (a conversion rate of 1) is not
    detectable with this many units.
    """
    target = _level("power", power)
    _positive("n_per_variant", n_per_variant)
    upper = (1 - baseline) if sd is None else 100 * _positive("sd", sd) + abs(baseline)
    upper_effect = upper / baseline if relative else upper

    def f(e: float) -> float:
        return _power(baseline, e, n_per_variant, sd=sd, relative=relative, alpha=alpha, ratio=ratio) - target

    if sd is None and f(upper_effect) < 0:
        return float("inf")
    lo = upper_effect * 1e-9
    return float(optimize.brentq(f, lo, upper_effect, xtol=1e-14, rtol=1e-12))


def expected_duration(units_needed: float, daily_units: float, *, coverage: float = 1.0) -> int:
    """Days to enrol ``units_needed`` units when ``daily_units`` arrive and ``coverage`` of them enter the test."""
    _positive("daily_units", daily_units)
    coverage = _positive("coverage", coverage)
    if coverage > 1:
        raise InvalidParameterError(f"coverage must be in (0, 1]. Got {coverage!r} instead.")
    return math.ceil(units_needed / (daily_units * coverage))


@dataclass(frozen=True)
class PowerPlan:
    """A test plan: units per arm and in total, the level each comparison uses, and days to run."""

    baseline: float
    effect: float
    relative: bool
    sd: float | None
    alpha: float
    alpha_per_comparison: float
    power: float
    variants: int
    units_per_variant: int
    units_total: int
    minimum_detectable_effect: float | None
    daily_units: float | None
    days: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return asdict(self)


def plan(
    baseline: float,
    effect: float,
    *,
    sd: float | None = None,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    variants: int = 2,
    daily_units: float | None = None,
    coverage: float = 1.0,
) -> PowerPlan:
    """Sample size for ``variants`` equal arms (control included) and how long they take.

    With more than one treatment each comparison is run at :math:`\\alpha/(k-1)` (Bonferroni, the
    first and strictest step of Holm's procedure), so the plan holds whichever correction is used.
    """
    if isinstance(variants, bool) or not isinstance(variants, int) or variants < 2:
        raise InvalidParameterError(
            f"variants must be an int >= 2 (control included). Got {variants!r} instead."
        )
    alpha = _level("alpha", alpha)
    per = alpha / (variants - 1)
    n = math.ceil(sample_size(baseline, effect, sd=sd, relative=relative, alpha=per, power=power))
    total = n * variants
    days = expected_duration(total, daily_units, coverage=coverage) if daily_units else None
    return PowerPlan(
        baseline, effect, relative, sd, alpha, per, power, variants, n, total, None, daily_units, days
    )


def detectable(
    baseline: float,
    n_per_variant: float,
    *,
    effect: float | None = None,
    sd: float | None = None,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    variants: int = 2,
) -> dict[str, Any]:
    """What a test with ``n_per_variant`` units per arm can see: its MDE, and its power for ``effect``.

    Like :func:`plan`, each of the ``variants - 1`` comparisons runs at :math:`\\alpha/(k-1)`.
    """
    if isinstance(variants, bool) or not isinstance(variants, int) or variants < 2:
        raise InvalidParameterError(
            f"variants must be an int >= 2 (control included). Got {variants!r} instead."
        )
    per = _level("alpha", alpha) / (variants - 1)
    mde = minimum_detectable_effect(baseline, n_per_variant, sd=sd, relative=relative, alpha=per, power=power)
    return {
        "baseline": baseline,
        "units_per_variant": n_per_variant,
        "variants": variants,
        "alpha": alpha,
        "alpha_per_comparison": per,
        "power": power,
        "relative": relative,
        "minimum_detectable_effect": mde,
        "effect": effect,
        "power_for_effect": None
        if effect is None
        else _power(baseline, effect, n_per_variant, sd=sd, relative=relative, alpha=per, ratio=1.0),
    }
