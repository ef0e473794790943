"""Ratio metrics (delta method), CUPED and the bootstrap, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from cartlift.experiments import (
    CovariateStats,
    RatioStats,
    SampleStats,
    analyze,
    bootstrap_test,
    cuped_estimate,
    cuped_theta,
    difference_test,
    ratio_estimate,
)


def _sessions(rng: np.random.Generator, n: int, spend: float) -> tuple[np.ndarray, np.ndarray]:
    sessions = rng.poisson(3.0, n) + 1
    revenue = rng.gamma(2.0, spend, n) * sessions * (rng.random(n) < 0.3)
    return revenue, sessions.astype(float)


def test_ratio_delta_variance_equals_linearised_values() -> None:
    """Var(R) by the delta method = variance of the influence values (y - R x) / mean(x), over n."""
    rng = np.random.default_rng(0)
    y, x = _sessions(rng, 5000, 10.0)
    est = ratio_estimate(RatioStats.from_values(y, x))
    ratio = y.sum() / x.sum()
    influence = (y - ratio * x) / x.mean()
    assert est.mean == pytest.approx(ratio, rel=1e-12)
    assert est.variance == pytest.approx(influence.var(ddof=1) / y.size, rel=1e-8)


def test_ratio_delta_variance_matches_monte_carlo_spread() -> None:
    """Over 2,000 simulated experiments the ratio's spread is what the delta method predicts."""
    rng = np.random.default_rng(1)
    ratios, predicted = [], []
    for _ in range(2000):
        y, x = _sessions(rng, 400, 10.0)
        ratios.append(y.sum() / x.sum())
        predicted.append(ratio_estimate(RatioStats.from_values(y, x)).variance)
    assert np.var(ratios, ddof=1) == pytest.approx(np.mean(predicted), rel=0.08)


def test_ratio_metric_analysis_uses_the_delta_method() -> None:
    rng = np.random.default_rng(2)
    ya, xa = _sessions(rng, 3000, 10.0)
    yb, xb = _sessions(rng, 3000, 11.0)
    result = analyze({"control": RatioStats.from_values(ya, xa), "b": RatioStats.from_values(yb, xb)})
    b = result.variant("b")
    direct = difference_test(
        ratio_estimate(RatioStats.from_values(ya, xa)), ratio_estimate(RatioStats.from_values(yb, xb))
    )
    assert result.kind == "ratio"
    assert b.p_value == pytest.approx(direct.p_value, rel=1e-12)
    assert b.mean == pytest.approx(yb.sum() / xb.sum(), rel=1e-12)


def _pre_post(rng: np.random.Generator, n: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    pre = rng.gamma(2.0, 5.0, n)
    post = 0.8 * pre + rng.normal(0, 4.0, n) + effect
    return post, pre


def test_cuped_equals_welch_on_adjusted_values_and_theta_equals_ols() -> None:
    rng = np.random.default_rng(3)
    ya, xa = _pre_post(rng, 2000, 0.0)
    yb, xb = _pre_post(rng, 2100, 0.4)
    a, b = CovariateStats.from_values(ya, xa), CovariateStats.from_values(yb, xb)
    theta = cuped_theta(a + b)
    x_all, y_all = np.r_[xa, xb], np.r_[ya, yb]
    ols = sm.OLS(y_all, sm.add_constant(x_all)).fit()
    assert theta == pytest.approx(ols.params[1], rel=1e-10)
    mean_x = x_all.mean()
    result = difference_test(
        cuped_estimate(a, theta, mean_x), cuped_estimate(b, theta, mean_x), relative=False
    )
    adj_a, adj_b = ya - theta * (xa - mean_x), yb - theta * (xb - mean_x)
    ref = stats.ttest_ind(adj_b, adj_a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert (result.ci_low, result.ci_high) == (
        pytest.approx(ci.low, rel=1e-8),
        pytest.approx(ci.high, rel=1e-8),
    )


def test_cuped_reduces_variance_by_the_squared_correlation() -> None:
    rng = np.random.default_rng(4)
    ya, xa = _pre_post(rng, 20000, 0.0)
    yb, xb = _pre_post(rng, 20000, 0.0)
    result = analyze({"control": CovariateStats.from_values(ya, xa), "b": CovariateStats.from_values(yb, xb)})
    rho = np.corrcoef(np.r_[ya, yb], np.r_[xa, xb])[0, 1]
    assert result.kind == "cuped"
    assert result.variance_reduction == pytest.approx(rho**2, abs=0.01)


def test_constant_covariate_leaves_the_metric_unadjusted_with_a_note() -> None:
    rng = np.random.default_rng(5)
    ya, yb = rng.normal(10, 2, 500), rng.normal(10.2, 2, 500)
    cov = analyze(
        {
            "control": CovariateStats.from_values(ya, np.ones(500)),
            "b": CovariateStats.from_values(yb, np.ones(500)),
        }
    )
    plain = analyze({"control": SampleStats.from_values(ya), "b": SampleStats.from_values(yb)})
    assert cov.variant("b").p_value == pytest.approx(plain.variant("b").p_value, rel=1e-10)
    assert any("constant" in note for note in cov.notes)


def test_bootstrap_agrees_with_scipy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(6)
    a = rng.lognormal(2.0, 1.0, 600)
    b = rng.lognormal(2.1, 1.0, 600)
    ours = bootstrap_test(a, b, relative=False, n_resamples=4000, random_state=0)
    ref = stats.bootstrap(
        (b, a),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        vectorized=True,
        paired=False,
        n_resamples=4000,
        method="percentile",
        rng=np.random.default_rng(1),
    )
    width = ref.confidence_interval.high - ref.confidence_interval.low
    # two independent resamplings of 4,000 replicates: their percentiles differ by Monte-Carlo noise only
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)
    assert ours.estimate == pytest.approx(b.mean() - a.mean(), rel=1e-12)
    assert ours.std_error == pytest.approx(ref.standard_error, rel=0.05)
    welch = stats.ttest_ind(b, a, equal_var=False)
    assert ours.p_value == pytest.approx(welch.pvalue, abs=0.02)


def test_bootstrap_is_reproducible_and_interval_agrees_with_p_value() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.exponential(10, 400), rng.exponential(12, 400)
    first = bootstrap_test(a, b, random_state=3)
    again = bootstrap_test(a, b, random_state=3)
    fields = ("estimate", "std_error", "ci_low", "ci_high", "p_value")
    assert [getattr(first, f) for f in fields] == [getattr(again, f) for f in fields]
    assert (first.ci_low > 0 or first.ci_high < 0) == (first.p_value < 0.05)
