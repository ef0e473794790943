"""Fixed-horizon frequentist tests, as pure functions of sufficient statistics.

The comparison everywhere is *variant minus control* (or variant / control - 1 when relative), so a
positive lift means the variant is better for a metric where more is better.

References
----------
* Welch (1947), "The generalization of 'Student's' problem when several different population
  variances are involved", Biometrika 34.
* Wilson (1927), "Probable inference, the law of succession, and statistical inference", JASA 22.
* Newcombe (1998), "Interval estimation for the difference between independent proportions:
  comparison of eleven methods", Statistics in Medicine 17 (method 10).
* Deng, Knoblich and Lu (2018), "Applying the Delta Method in Metric Analytics", KDD (relative lift).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from cartlift.errors import InvalidParameterError
from cartlift.experiments import _messages as msg
from cartlift.experiments._statistics import ArmEstimate, SampleStats

__all__ = [
    "Inference",
    "chi_square_test",
    "difference_test",
    "fisher_exact_test",
    "newcombe_interval",
    "two_proportion_ztest",
    "wilson_interval",
]


@dataclass(frozen=True)
class Inference:
    """One comparison of a variant against the control (or one interval).

    Attributes
    ----------
    estimate : float
        The effect: absolute difference, relative lift, or the statistic's natural estimate.
    std_error : float
        Standard error of ``estimate`` (0 where the method has none).
    ci_low, ci_high : float
        The two-sided ``1 - alpha`` interval.
    p_value : float
        Two-sided p-value of "no effect" (1.0 for a degenerate comparison).
    statistic : float
        The test statistic (t, z, chi-square or odds ratio).
    df : float
        Degrees of freedom (``inf`` for normal-theory tests).
    method : str
        Which test produced it.
    error_code, error_message : str or None
        Set when the data were degenerate (see :mod:`cartlift.experiments._messages`).
    """

    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float
    df: float
    method: str
    alpha: float = 0.05
    error_code: str | None = None
    error_message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {
            "method": self.method,
            "estimate": self.estimate,
            "std_error": self.std_error,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "statistic": self.statistic,
            "df": self.df if np.isfinite(self.df) else None,
            "error_code": self.error_code,
            "error_message": self.error_message,
        }


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise InvalidParameterError(f"alpha must be a float in (0, 1), e.g. 0.05. Got {alpha!r} instead.")
    return float(alpha)


def degenerate(method: str, code: str, alpha: float = 0.05, **values: object) -> Inference:
    """The neutral result of a comparison the data cannot support, with its message."""
    return Inference(
        0.0, 0.0, 0.0, 0.0, 1.0, 0.0, float("nan"), method, alpha, code, msg.message(code, **values)
    )


def welch_kernel(
    mean_a: Any, var_a: Any, n_a: Any, mean_b: Any, var_b: Any, n_b: Any, *, relative: bool, alpha: float
) -> tuple[Any, Any, Any, Any, Any, Any]:
    """Array-friendly Welch comparison of arm estimates; returns (estimate, se, df, t, p, half-width).

    ``var_a`` and ``var_b`` are variances of the arm *estimates* (:math:`s^2/n`). The absolute
    effect is :math:`\\Delta = m_b - m_a` with :math:`SE^2 = v_a + v_b`; the relative effect is
    :math:`m_b/m_a - 1` with the delta-method variance

    .. math::  SE^2_{rel} = \\frac{v_b}{m_a^2} + \\frac{m_b^2 v_a}{m_a^4}

    Both use the Welch-Satterthwaite degrees of freedom
    :math:`\\nu = (v_a + v_b)^2 / (v_a^2/(n_a-1) + v_b^2/(n_b-1))` and Student quantiles,
    which is what gbstats' ``TwoSidedTTest`` does.
    """
    mean_a, var_a, mean_b, var_b = (np.asarray(v, dtype=float) for v in (mean_a, var_a, mean_b, var_b))
    n_a, n_b = np.asarray(n_a, dtype=float), np.asarray(n_b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
        if relative:
            estimate = mean_b / mean_a - 1
            se = np.sqrt(var_b / mean_a**2 + mean_b**2 * var_a / mean_a**4)
        else:
            estimate = mean_b - mean_a
            se = np.sqrt(var_a + var_b)
        t = estimate / se
    p = 2 * stats.t.sf(np.abs(t), df)
    half = stats.t.isf(alpha / 2, df) * se
    return estimate, se, df, t, p, half


def difference_test(
    control: ArmEstimate, variant: ArmEstimate, *, relative: bool = True, alpha: float = 0.05
) -> Inference:
    """Welch t-test of the difference (or relative lift) between two arm estimates.

    With ``relative=False`` and plain means this is exactly
    ``scipy.stats.ttest_ind(control, variant, equal_var=False)`` with the sign flipped to
    variant minus control. With ``relative=True`` it is gbstats' relative ``TwoSidedTTest``:
    the interval and the p-value come from the same statistic, so they always agree.

    Parameters
    ----------
    control, variant : ArmEstimate
        Point estimates with the variance of the estimate and the unit count.
    relative : bool
        Test the relative lift :math:`m_b/m_a - 1` instead of :math:`m_b - m_a`.
    alpha : float
        The interval is two-sided at level ``1 - alpha``.
    """
    alpha = _check_alpha(alpha)
    method = "welch_relative" if relative else "welch"
    if control.n < 2 or variant.n < 2:
        return degenerate(method, msg.TOO_FEW_UNITS, alpha, n_control=control.n, n_variant=variant.n)
    if relative and control.mean == 0:
        return degenerate(method, msg.ZERO_CONTROL_MEAN, alpha)
    if control.variance + variant.variance <= 0:
        return degenerate(method, msg.ZERO_VARIANCE, alpha)
    est, se, df, t, p, half = welch_kernel(
        control.mean,
        control.variance,
        control.n,
        variant.mean,
        variant.variance,
        variant.n,
        relative=relative,
        alpha=alpha,
    )
    e, h = float(est), float(half)
    return Inference(e, float(se), e - h, e + h, float(p), float(t), float(df), method, alpha)


def _binary_counts(control: SampleStats, variant: SampleStats) -> tuple[float, float, float, float]:
    for arm in (control, variant):
        if not arm.is_binary:
            raise InvalidParameterError(
                "Proportion tests need a 0/1 metric (sum of squares equal to the sum). "
                f"Got n={arm.n}, sum={arm.sum}, sum_squares={arm.sum_squares} instead; use difference_test."
            )
    return control.sum, float(control.n), variant.sum, float(variant.n)


def two_proportion_ztest(
    control: SampleStats, variant: SampleStats, *, pooled: bool = True, alpha: float = 0.05
) -> Inference:
    """Two-proportion z-test of :math:`p_b - p_a`, with the Wald interval.

    The statistic uses the pooled proportion :math:`\\hat p = (x_a + x_b)/(n_a + n_b)` under the
    null, :math:`z = (\\hat p_b - \\hat p_a) / \\sqrt{\\hat p (1-\\hat p)(1/n_a + 1/n_b)}`
    (``statsmodels.stats.proportion.proportions_ztest``), or the unpooled variance
    :math:`\\hat p_a \\hat q_a/n_a + \\hat p_b \\hat q_b / n_b` with ``pooled=False``
    (``test_proportions_2indep(method="wald")``). The interval is always the unpooled Wald interval.
    """
    alpha = _check_alpha(alpha)
    method = "z_test_pooled" if pooled else "z_test"
    xa, na, xb, nb = _binary_counts(control, variant)
    if na < 1 or nb < 1:
        return degenerate(method, msg.TOO_FEW_UNITS, alpha, n_control=int(na), n_variant=int(nb))
    pa, pb = xa / na, xb / nb
    wald_var = pa * (1 - pa) / na + pb * (1 - pb) / nb
    if pooled:
        pp = (xa + xb) / (na + nb)
        test_var = pp * (1 - pp) * (1 / na + 1 / nb)
    else:
        test_var = wald_var
    if test_var <= 0:
        return degenerate(method, msg.ZERO_VARIANCE, alpha)
    diff = pb - pa
    z = diff / np.sqrt(test_var)
    half = stats.norm.isf(alpha / 2) * np.sqrt(wald_var)
    return Inference(
        diff,
        float(np.sqrt(wald_var)),
        float(diff - half),
        float(diff + half),
        float(2 * stats.norm.sf(abs(z))),
        float(z),
        float("inf"),
        method,
        alpha,
    )


def chi_square_test(control: SampleStats, variant: SampleStats, *, correction: bool = False) -> Inference:
    """Pearson chi-square test of independence on the 2x2 table (arm x converted).

    :math:`\\chi^2 = \\sum (O - E)^2 / E` with one degree of freedom; with ``correction=True`` Yates'
    continuity correction moves each observed count up to 0.5 towards its expectation, as
    ``scipy.stats.chi2_contingency`` does. Without correction it equals the pooled z-test squared.
    """
    method = "chi_square_yates" if correction else "chi_square"
    xa, na, xb, nb = _binary_counts(control, variant)
    observed = np.array([[xa, na - xa], [xb, nb - xb]])
    expected = observed.sum(1, keepdims=True) * observed.sum(0, keepdims=True) / observed.sum()
    if observed.sum() == 0 or np.any(expected == 0):
        return degenerate(
            method, msg.ZERO_VARIANCE if observed.sum() else msg.TOO_FEW_UNITS, n_control=0, n_variant=0
        )
    if correction:
        gap = expected - observed
        observed = observed + np.sign(gap) * np.minimum(0.5, np.abs(gap))
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    diff = xb / nb - xa / na
    return Inference(diff, 0.0, float("nan"), float("nan"), float(stats.chi2.sf(chi2, 1)), chi2, 1.0, method)


def fisher_exact_test(control: SampleStats, variant: SampleStats) -> Inference:
    """Fisher's exact test on the 2x2 table, two-sided; the statistic is the sample odds ratio.

    Conditional on the margins the control's conversions follow a hypergeometric law; the two-sided
    p-value sums the probabilities of every table no more likely than the one observed (with the
    relative tolerance :math:`1 + 10^{-7}` of R's ``fisher.test``, so ties are counted).
    Cost grows with the smaller margin, so use it for small counts; large samples agree with the
    chi-square test anyway.
    """
    xa, na, xb, nb = (int(v) for v in _binary_counts(control, variant))
    if na < 1 or nb < 1:
        return degenerate("fisher_exact", msg.TOO_FEW_UNITS, n_control=na, n_variant=nb)
    successes = xa + xb
    low, high = max(0, successes - nb), min(successes, na)
    support = np.arange(low, high + 1)
    logp = stats.hypergeom.logpmf(support, na + nb, na, successes)
    observed = stats.hypergeom.logpmf(xa, na + nb, na, successes)
    keep = logp <= observed + np.log1p(1e-7)
    p = float(min(1.0, np.exp(special.logsumexp(logp[keep])))) if keep.any() else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = float(np.float64(xb * (na - xa)) / np.float64((nb - xb) * xa))
    diff = xb / nb - xa / na
    return Inference(diff, 0.0, float("nan"), float("nan"), p, odds, float("nan"), "fisher_exact")


def wilson_interval(successes: float, n: float, *, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    .. math::

        \\frac{\\hat p + z^2/2n}{1 + z^2/n} \\pm
        \\frac{z \\sqrt{\\hat p(1-\\hat p)/n + z^2/4n^2}}{1 + z^2/n}

    Equal to ``statsmodels.stats.proportion.proportion_confint(method="wilson")``; unlike the Wald
    interval it stays inside [0, 1] and behaves at 0 or n successes.
    """
    alpha = _check_alpha(alpha)
    if n <= 0:
        return (0.0, 1.0)
    z = stats.norm.isf(alpha / 2)
    p = successes / n
    denom = 1 + z**2 / n
    center = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return float(center - half), float(center + half)


def newcombe_interval(control: SampleStats, variant: SampleStats, *, alpha: float = 0.05) -> Inference:
    """Newcombe's hybrid score interval of :math:`p_b - p_a` (his method 10), from two Wilson intervals.

    .. math::

        L = \\Delta - \\sqrt{(\\hat p_b - l_b)^2 + (u_a - \\hat p_a)^2}, \\quad
        U = \\Delta + \\sqrt{(u_b - \\hat p_b)^2 + (\\hat p_a - l_a)^2}

    Equal to ``statsmodels.stats.proportion.confint_proportions_2indep(method="newcomb")``.
    """
    alpha = _check_alpha(alpha)
    xa, na, xb, nb = _binary_counts(control, variant)
    if na < 1 or nb < 1:
        return degenerate("newcombe", msg.TOO_FEW_UNITS, alpha, n_control=int(na), n_variant=int(nb))
    pa, pb = xa / na, xb / nb
    la, ua = wilson_interval(xa, na, alpha=alpha)
    lb, ub = wilson_interval(xb, nb, alpha=alpha)
    diff = pb - pa
    low = diff - np.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = diff + np.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    return Inference(
        diff, 0.0, float(low), float(high), float("nan"), float("nan"), float("inf"), "newcombe", alpha
    )
