"""A/A simulations (seeded, vectorised), peeking, and group-sequential boundaries against published values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cartlift.experiments import (
    ArmEstimate,
    confidence_sequence,
    group_sequential_test,
    spending_boundaries,
)
from cartlift.experiments._frequentist import welch_kernel
from cartlift.experiments._sequential import sequential_kernel


def _binary_arms(
    rng: np.random.Generator, sims: int, batches: int, batch: int, p: float
) -> tuple[np.ndarray, ...]:
    """Cumulative conversions of two identical arms after each batch: shape (sims, batches)."""
    xa = rng.binomial(batch, p, size=(sims, batches)).cumsum(axis=1)
    xb = rng.binomial(batch, p, size=(sims, batches)).cumsum(axis=1)
    n = batch * np.arange(1, batches + 1)
    return xa, xb, np.broadcast_to(n, xa.shape)


def _mean_and_variance(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x / n
    unit_var = (x - x**2 / n) / (n - 1)  # sample variance of 0/1 values from their sums
    return mean, unit_var / n


def test_fixed_horizon_false_positive_rate_is_alpha() -> None:
    """20,000 seeded A/A tests, one look each: the false positive rate is 5 % within [4 %, 6 %]."""
    rng = np.random.default_rng(2024)
    xa, xb, n = _binary_arms(rng, 20_000, 1, 2_000, 0.1)
    ma, va = _mean_and_variance(xa, n)
    mb, vb = _mean_and_variance(xb, n)
    for relative in (True, False):
        *_, p, _ = welch_kernel(ma, va, n, mb, vb, n, relative=relative, alpha=0.05)
        rate = float(np.mean(p < 0.05))
        assert 0.04 <= rate <= 0.06, (relative, rate)
    rng = np.random.default_rng(7)  # a continuous metric too: revenue-like lognormal values
    a = rng.lognormal(3, 1, size=(4000, 500))
    b = rng.lognormal(3, 1, size=(4000, 500))
    *_, p, _ = welch_kernel(
        a.mean(1),
        a.var(1, ddof=1) / 500,
        500,
        b.mean(1),
        b.var(1, ddof=1) / 500,
        500,
        relative=True,
        alpha=0.05,
    )
    assert 0.04 <= float(np.mean(p < 0.05)) <= 0.06


def test_peeking_inflates_the_naive_test_but_not_the_sequential_one() -> None:
    """4,000 A/A tests looked at after each of 20 batches, stopping at the first p < 0.05."""
    rng = np.random.default_rng(11)
    sims, batches, batch = 4_000, 20, 500
    xa, xb, n = _binary_arms(rng, sims, batches, batch, 0.1)
    ma, va = _mean_and_variance(xa, n)
    mb, vb = _mean_and_variance(xb, n)
    estimate, se, _, _, p_naive, _ = welch_kernel(ma, va, n, mb, vb, n, relative=True, alpha=0.05)
    _, p_seq = sequential_kernel(estimate, se**2, 2 * n, alpha=0.05, design_alpha=0.05, tuning_n=5000)
    naive = float(np.mean((p_naive < 0.05).any(axis=1)))
    sequential = float(np.mean((p_seq < 0.05).any(axis=1)))
    last_look_only = float(np.mean(p_naive[:, -1] < 0.05))
    assert naive > 0.10, naive  # peeking 20 times roughly quadruples the false positives
    assert sequential <= 0.05, sequential
    assert 0.04 <= last_look_only <= 0.06


def test_sequential_interval_and_p_value_agree_and_match_msprt() -> None:
    control, variant = ArmEstimate(0.100, 0.003**2, 10_000), ArmEstimate(0.109, 0.003**2, 10_000)
    result = confidence_sequence(control, variant, relative=False, tuning_n=20_000)
    assert (result.ci_low > 0) == (result.p_value < 0.05)
    # Johari et al. (2017) mSPRT with a N(0, tau^2) mixture, tau^2 = rho^2 * s^2: the same e-value
    v = control.variance + variant.variance
    n = control.n + variant.n
    rho2 = (-2 * np.log(0.05) + np.log(-2 * np.log(0.05) + 1)) / 20_000
    tau2 = rho2 * v * n
    delta = variant.mean - control.mean
    likelihood_ratio = np.sqrt(v / (v + tau2)) * np.exp(tau2 * delta**2 / (2 * v * (v + tau2)))
    assert result.p_value == pytest.approx(min(1.0, 1 / likelihood_ratio), rel=1e-10)
    wider = confidence_sequence(
        control, variant, relative=False, tuning_n=20_000, interval_alpha=result.p_value
    )
    assert wider.ci_low == pytest.approx(0.0, abs=1e-12)


def test_lan_demets_boundaries_equal_published_values() -> None:
    """ldbounds / Reboussin et al. (2000): K = 5 equally spaced looks, two-sided alpha = 0.05."""
    obf = spending_boundaries(5, spending="obrien_fleming")
    pocock = spending_boundaries(5, spending="pocock")
    assert [round(z, 4) for z in obf.z] == [4.8769, 3.3570, 2.6803, 2.2898, 2.0310]
    assert [round(z, 4) for z in pocock.z] == [2.4380, 2.4268, 2.4102, 2.3966, 2.3860]
    assert spending_boundaries(1).z[0] == pytest.approx(stats.norm.isf(0.025), rel=1e-12)


def test_boundaries_keep_the_overall_error_at_alpha_by_simulation() -> None:
    """Brownian motion observed at the looks (200,000 seeded paths) crosses the boundaries 5 % of the time."""
    t = np.array([0.3, 0.5, 0.8, 1.0])
    design = spending_boundaries(t, spending="obrien_fleming")
    rng = np.random.default_rng(5)
    steps = rng.normal(size=(200_000, t.size)) * np.sqrt(np.diff(np.r_[0.0, t]))
    z = steps.cumsum(axis=1) / np.sqrt(t)
    crossed = (np.abs(z) >= np.array(design.z)).any(axis=1)
    assert float(crossed.mean()) == pytest.approx(0.05, abs=0.0015)
    first = (np.abs(z) >= np.array(design.z)).argmax(axis=1)
    spent_at_first_look = float(np.mean(crossed & (first == 0)))
    assert spent_at_first_look == pytest.approx(design.alpha_spent[0], abs=0.0005)


def test_group_sequential_repeated_p_value_agrees_with_the_boundary() -> None:
    design = spending_boundaries(4, spending="pocock")
    control = ArmEstimate(0.10, 0.002**2, 20_000)
    for shift in (0.002, 0.0055, 0.0065, 0.012):
        variant = ArmEstimate(0.10 + shift, 0.002**2, 20_000)
        for look in range(4):
            result = group_sequential_test(control, variant, design, look, relative=False)
            crossed = abs(result.statistic) >= design.z[look]
            assert crossed == (result.p_value < 0.05), (shift, look)
            assert crossed == (result.ci_low > 0 or result.ci_high < 0)
