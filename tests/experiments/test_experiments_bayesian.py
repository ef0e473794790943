"""Bayesian models against seeded Monte-Carlo draws from the same posteriors, and a closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from cartlift.experiments import ArmEstimate, SampleStats, beta_binomial, normal_model

DRAWS = 4_000_000  # Monte-Carlo standard error of a probability <= 0.5 / sqrt(4e6) = 2.5e-4


def _evan_miller(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(B > A) for Beta posteriors with integer a_b (Miller 2015, "Formulas for Bayesian A/B testing")."""
    i = np.arange(a_b)
    logs = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(special.logsumexp(logs)))


@pytest.mark.parametrize(
    ("xa", "na", "xb", "nb"),
    [
        (20034, 44700, 20119, 45489),
        pytest.param(8502, 44700, 8279, 45489, marks=pytest.mark.slow),
        pytest.param(100, 1000, 130, 1000, marks=pytest.mark.slow),
        (3, 40, 9, 45),
    ],
)
def test_beta_binomial_matches_monte_carlo(xa: int, na: int, xb: int, nb: int) -> None:
    result = beta_binomial(SampleStats.from_counts(xa, na), SampleStats.from_counts(xb, nb))
    rng = np.random.default_rng(0)
    a = rng.beta(1 + xa, 1 + na - xa, DRAWS)
    b = rng.beta(1 + xb, 1 + nb - xb, DRAWS)
    assert abs(result.chance_to_beat_control - np.mean(b > a)) < 1e-3
    scale = np.mean(np.abs(b - a))
    assert result.expected_loss == pytest.approx(np.mean(np.maximum(a - b, 0)), abs=5e-3 * scale)
    assert result.expected_loss_control == pytest.approx(np.mean(np.maximum(b - a, 0)), abs=5e-3 * scale)
    lift = b / a - 1
    low, mid, high = np.quantile(lift, [0.025, 0.5, 0.975])
    spread = high - low
    assert (result.ci_low, result.lift, result.ci_high) == (
        pytest.approx(low, abs=5e-3 * spread),
        pytest.approx(mid, abs=5e-3 * spread),
        pytest.approx(high, abs=5e-3 * spread),
    )


@pytest.mark.parametrize(("xa", "na", "xb", "nb"), [(3, 40, 9, 45), (0, 10, 0, 12), (30, 200, 41, 210)])
def test_beta_binomial_equals_closed_form(xa: int, na: int, xb: int, nb: int) -> None:
    result = beta_binomial(SampleStats.from_counts(xa, na), SampleStats.from_counts(xb, nb))
    exact = _evan_miller(1 + xa, 1 + na - xa, 1 + xb, 1 + nb - xb)
    assert result.chance_to_beat_control == pytest.approx(exact, abs=1e-9)


def test_absolute_credible_interval_of_the_beta_model() -> None:
    result = beta_binomial(
        SampleStats.from_counts(100, 1000), SampleStats.from_counts(130, 1000), relative=False
    )
    rng = np.random.default_rng(1)
    diff = rng.beta(131, 871, DRAWS // 4) - rng.beta(101, 901, DRAWS // 4)
    low, high = np.quantile(diff, [0.025, 0.975])
    assert (result.ci_low, result.ci_high) == (pytest.approx(low, abs=3e-4), pytest.approx(high, abs=3e-4))


@pytest.mark.parametrize("relative", [True, False])
def test_normal_model_matches_monte_carlo(relative: bool) -> None:
    control, variant = ArmEstimate(52.46, 0.35**2, 44700), ArmEstimate(51.30, 0.30**2, 45489)
    result = normal_model(control, variant, relative=relative)
    rng = np.random.default_rng(2)
    a = rng.normal(control.mean, np.sqrt(control.variance), DRAWS)
    b = rng.normal(variant.mean, np.sqrt(variant.variance), DRAWS)
    assert abs(result.chance_to_beat_control - np.mean(b > a)) < 1e-3
    assert result.expected_loss == pytest.approx(np.mean(np.maximum(a - b, 0)), rel=5e-3)
    assert result.expected_loss_control == pytest.approx(np.mean(np.maximum(b - a, 0)), rel=2e-2)
    effect = b / a - 1 if relative else b - a
    low, high = np.quantile(effect, [0.025, 0.975])
    spread = high - low
    assert (result.ci_low, result.ci_high) == (
        pytest.approx(low, abs=5e-3 * spread),
        pytest.approx(high, abs=5e-3 * spread),
    )


def test_degenerate_bayesian_results_are_neutral_with_a_message() -> None:
    empty = beta_binomial(SampleStats.from_counts(0, 0), SampleStats.from_counts(3, 10))
    flat = normal_model(ArmEstimate(1.0, 0.0, 50), ArmEstimate(1.0, 0.0, 50), relative=False)
    for result in (empty, flat):
        assert result.error_code is not None
        assert result.chance_to_beat_control == 0.5
        assert result.error_message


def test_relative_lift_of_a_control_mean_within_two_standard_errors_of_zero_has_no_interval() -> None:
    # P(lift <= r) never passes Phi(m_a / sd_a) ~ 0.93 here, so the 97.5 % quantile does not exist:
    # a valid result with an error code, not a failed root search
    control, variant = ArmEstimate(1.5, 1.0, 40), ArmEstimate(3.0, 1.2, 40)
    result = normal_model(control, variant, relative=True)
    assert result.error_code == "uncertain_control_mean" and "too close to 0" in result.error_message
    assert normal_model(control, variant, relative=False).error_code is None
