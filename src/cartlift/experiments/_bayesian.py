"""Bayesian comparisons: Beta-Binomial for conversions, normal for means, ratios and CUPED.

Both report the three numbers a decision needs (Stucchio 2015, "Bayesian A/B Testing at VWO";
GrowthBook's Bayesian engine):

* the chance to beat control :math:`P(\\theta_b > \\theta_a \\mid data)`;
* the expected loss (risk) of shipping the variant :math:`E[\\max(\\theta_a - \\theta_b, 0)]`,
  and of keeping the control :math:`E[\\max(\\theta_b - \\theta_a, 0)]`, in metric units;
* a credible interval of the lift (relative by default).

Everything is computed by one-dimensional quadrature or in closed form, not by sampling, so the
numbers are deterministic; the tests check them against seeded Monte-Carlo draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from cartlift.errors import InvalidParameterError
from cartlift.experiments import _messages as msg
from cartlift.experiments._frequentist import _binary_counts, _check_alpha
from cartlift.experiments._statistics import ArmEstimate, SampleStats

__all__ = ["BayesianResult", "beta_binomial", "normal_model"]


@dataclass(frozen=True)
class BayesianResult:
    """Posterior summary of one variant against the control.

    Attributes
    ----------
    chance_to_beat_control : float
        :math:`P(\\theta_b > \\theta_a \\mid data)`.
    expected_loss : float
        :math:`E[\\max(\\theta_a - \\theta_b, 0)]`: what shipping the variant costs if it is worse.
    expected_loss_control : float
        :math:`E[\\max(\\theta_b - \\theta_a, 0)]`: what keeping the control costs if it is worse.
    lift : float
        Posterior median of the lift (relative or absolute).
    ci_low, ci_high : float
        Equal-tailed ``1 - alpha`` credible interval of the lift.
    """

    chance_to_beat_control: float
    expected_loss: float
    expected_loss_control: float
    lift: float
    ci_low: float
    ci_high: float
    relative: bool
    model: str
    alpha: float = 0.05
    error_code: str | None = None
    error_message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _neutral(model: str, relative: bool, alpha: float, code: str, **values: object) -> BayesianResult:
    return BayesianResult(
        0.5, 0.0, 0.0, 0.0, 0.0, 0.0, relative, model, alpha, code, msg.message(code, **values)
    )


def _panel_nodes(panels: int = 48, order: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on (0, 1), with panels equally spaced in logit(u).

    Logit spacing puts panels where posterior quantile functions bend (the tails); 768 vectorised
    evaluations agree with a 6,400-node rule to 1e-11 on the integrands below (checked from
    2 to 10M conversions) and replace thousands of scalar calls of an adaptive routine.
    """
    edges = 1 / (1 + np.exp(-np.linspace(-30.0, 30.0, panels + 1)))
    edges[0], edges[-1] = 0.0, 1.0
    x, w = np.polynomial.legendre.leggauss(order)
    half = np.diff(edges)[:, None] / 2
    mid = (edges[:-1] + edges[1:])[:, None] / 2
    return (mid + half * x).ravel(), (half * w).ravel()


_U, _W = _panel_nodes()


def _integrate(values: np.ndarray) -> float:
    """:math:`\\int_0^1 h(u)\\,du` from ``h`` evaluated at the panel nodes ``_U``."""
    return float(values @ _W)


def _quantile(cdf: Callable[[float], float], q: float, guess: float, scale: float, floor: float) -> float:
    """Solve ``cdf(x) = q`` by bracketing around ``guess`` (``x > floor``)."""
    lo, hi = guess - 8 * scale, guess + 8 * scale
    lo = max(lo, floor + 1e-12 * max(1.0, abs(floor)))
    for _ in range(60):
        if cdf(lo) <= q:
            break
        lo = floor + (lo - floor) / 2 if np.isfinite(floor) else lo - 8 * scale
    for _ in range(60):
        if cdf(hi) >= q:
            break
        hi += 8 * scale
    return float(optimize.brentq(lambda x: cdf(x) - q, lo, hi, xtol=1e-12, rtol=1e-12))


def beta_binomial(
    control: SampleStats,
    variant: SampleStats,
    *,
    prior: tuple[float, float] = (1.0, 1.0),
    relative: bool = True,
    alpha: float = 0.05,
) -> BayesianResult:
    """Beta-Binomial comparison of two conversion rates.

    With a :math:`\\mathrm{Beta}(\\alpha_0, \\beta_0)` prior the posteriors are
    :math:`A \\sim \\mathrm{Beta}(\\alpha_0 + x_a, \\beta_0 + n_a - x_a)` and likewise for ``B``. Then

    .. math::

        P(B > A) = \\int_0^1 S_B(Q_A(u))\\,du, \\qquad
        E[(A - B)^+] = \\int_0^1 \\big(Q_A(u) F_B(Q_A(u)) - \\mu_B F_{B^+}(Q_A(u))\\big)\\,du

    where :math:`Q_A` is A's quantile function and :math:`B^+` is
    :math:`\\mathrm{Beta}(\\alpha_B + 1, \\beta_B)` (because :math:`x f_{a,b}(x) = \\mu f_{a+1,b}(x)`,
    so :math:`E[(s - B)^+] = s F_B(s) - \\mu_B F_{B^+}(s)`).
    The integral runs over the quantiles :math:`Q` of the narrower posterior so the integrand is
    smooth. The lift's distribution is :math:`P(B/A - 1 \\le r) = \\int_0^1 F_B((1+r)Q_A(u))\\,du`,
    inverted for the credible interval.

    References
    ----------
    Stucchio (2015), "Bayesian A/B Testing at VWO", sections 3-4; Miller (2015), "Formulas for
    Bayesian A/B Testing".
    """
    alpha = _check_alpha(alpha)
    a0, b0 = prior
    if not (a0 > 0 and b0 > 0):
        raise InvalidParameterError(
            f"The Beta prior's parameters must be > 0, e.g. (1, 1). Got {prior!r} instead."
        )
    xa, na, xb, nb = _binary_counts(control, variant)
    if na < 1 or nb < 1:
        return _neutral(
            "beta_binomial", relative, alpha, msg.TOO_FEW_UNITS, n_control=int(na), n_variant=int(nb)
        )
    A = stats.beta(a0 + xa, b0 + na - xa)
    B = stats.beta(a0 + xb, b0 + nb - xb)
    A_up = stats.beta(a0 + xa + 1, b0 + na - xa)
    B_up = stats.beta(a0 + xb + 1, b0 + nb - xb)
    mu_a, mu_b = float(A.mean()), float(B.mean())
    over_a = A.std() <= B.std()  # integrate over the narrower posterior's quantiles

    # outer integral over the narrower posterior's quantiles q = Q(u), inner law in closed form:
    # E[(X - s)^+] = mu_X S_{X+}(s) - s S_X(s) and E[(s - X)^+] = s F_X(s) - mu_X F_{X+}(s)
    if over_a:
        q = A.ppf(_U)
        chance = _integrate(B.sf(q))
        loss_variant = _integrate(q * B.cdf(q) - mu_b * B_up.cdf(q))  # E[(A - B)^+]
        loss_control = _integrate(mu_b * B_up.sf(q) - q * B.sf(q))  # E[(B - A)^+]
    else:
        q = B.ppf(_U)
        chance = 1.0 - _integrate(A.sf(q))
        loss_variant = _integrate(mu_a * A_up.sf(q) - q * A.sf(q))
        loss_control = _integrate(q * A.cdf(q) - mu_a * A_up.cdf(q))

    if relative:

        def cdf(r: float) -> float:
            if over_a:
                return _integrate(B.cdf((1 + r) * q))
            return 1.0 - _integrate(A.cdf(q / (1 + r)))

        guess = mu_b / mu_a - 1
        scale = float(np.sqrt(B.var() / mu_a**2 + mu_b**2 * A.var() / mu_a**4))
        floor = -1.0
    else:

        def cdf(r: float) -> float:
            if over_a:
                return _integrate(B.cdf(q + r))
            return 1.0 - _integrate(A.cdf(q - r))

        guess = mu_b - mu_a
        scale = float(np.sqrt(A.var() + B.var()))
        floor = -np.inf
    lift, low, high = (_quantile(cdf, q, guess, scale, floor) for q in (0.5, alpha / 2, 1 - alpha / 2))
    return BayesianResult(
        float(np.clip(chance, 0, 1)),
        max(loss_variant, 0.0),
        max(loss_control, 0.0),
        lift,
        low,
        high,
        relative,
        "beta_binomial",
        alpha,
    )


def normal_model(
    control: ArmEstimate, variant: ArmEstimate, *, relative: bool = True, alpha: float = 0.05
) -> BayesianResult:
    """Normal model with a flat prior: each arm's mean is :math:`N(m, v)` a posteriori.

    With :math:`D = B - A \\sim N(\\Delta, \\sigma^2)`, :math:`\\Delta = m_b - m_a`,
    :math:`\\sigma^2 = v_a + v_b`:

    .. math::

        P(B > A) = \\Phi(\\Delta/\\sigma), \\quad
        E[(A - B)^+] = \\sigma\\varphi(\\Delta/\\sigma) - \\Delta\\Phi(-\\Delta/\\sigma), \\quad
        E[(B - A)^+] = \\sigma\\varphi(\\Delta/\\sigma) + \\Delta\\Phi(\\Delta/\\sigma).

    The relative lift uses :math:`P(B/A - 1 \\le r) = P(B - (1+r)A \\le 0) =
    \\Phi\\big(((1+r)m_a - m_b)/\\sqrt{v_b + (1+r)^2 v_a}\\big)`, exact when the control's mean is
    positive with certainty (many standard errors above 0, the case of any real experiment).
    Works for any :class:`ArmEstimate` (plain, ratio or CUPED-adjusted means).
    """
    alpha = _check_alpha(alpha)
    if control.n < 2 or variant.n < 2:
        return _neutral(
            "normal", relative, alpha, msg.TOO_FEW_UNITS, n_control=control.n, n_variant=variant.n
        )
    if relative and control.mean <= 0:
        return _neutral("normal", relative, alpha, msg.ZERO_CONTROL_MEAN)
    sigma = float(np.sqrt(control.variance + variant.variance))
    if sigma <= 0:
        return _neutral("normal", relative, alpha, msg.ZERO_VARIANCE)
    delta = variant.mean - control.mean
    z = delta / sigma
    chance = float(stats.norm.cdf(z))
    loss_variant = float(sigma * stats.norm.pdf(z) - delta * stats.norm.cdf(-z))
    loss_control = float(sigma * stats.norm.pdf(z) + delta * stats.norm.cdf(z))
    if relative:
        ma, va, mb, vb = control.mean, control.variance, variant.mean, variant.variance
        # P(lift <= r) tends to Phi(ma / sd_a) < 1 as r grows: the upper quantile exists only
        # when the control's mean is clearly above 0
        if va > 0 and float(stats.norm.cdf(ma / np.sqrt(va))) <= 1 - alpha / 2:
            return _neutral("normal", relative, alpha, msg.UNCERTAIN_CONTROL_MEAN)

        def cdf(r: float) -> float:
            return float(stats.norm.cdf(((1 + r) * ma - mb) / np.sqrt(vb + (1 + r) ** 2 * va)))

        guess = mb / ma - 1
        scale = float(np.sqrt(vb / ma**2 + mb**2 * va / ma**4))
        lift, low, high = (_quantile(cdf, q, guess, scale, -1.0) for q in (0.5, alpha / 2, 1 - alpha / 2))
    else:
        half = float(stats.norm.isf(alpha / 2) * sigma)
        lift, low, high = delta, delta - half, delta + half
    return BayesianResult(
        chance, max(loss_variant, 0.0), max(loss_control, 0.0), lift, low, high, relative, "normal", alpha
    )
