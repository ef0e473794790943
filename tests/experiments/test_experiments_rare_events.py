"""The gamma / MOVER interval of a difference whose control is a weighted sum of rare purchases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cartlift.errors import DataError
from cartlift.experiments import rare_event_difference, weighted_poisson_interval


@pytest.mark.parametrize("events", [0, 1, 7, 40])
def test_equal_weights_give_the_exact_poisson_limits(events: int) -> None:
    # with one weight w the sum is w times a Poisson count: Garwood's chi-square limits (Fay and
    # Feuer's method is exact there, and so is Tiwari, Clegg and Zou's upper limit)
    x = np.r_[np.ones(events), np.zeros(60)]
    low, high = weighted_poisson_interval(x, np.full(x.size, 2.5), alpha=0.05)
    garwood_low = 0.0 if events == 0 else stats.chi2.ppf(0.025, 2 * events) / 2
    assert low == pytest.approx(2.5 * garwood_low, rel=1e-9)
    assert high == pytest.approx(2.5 * stats.chi2.ppf(0.975, 2 * events + 2) / 2, rel=1e-9)


def test_unbought_heavy_units_widen_the_upper_limit() -> None:
    # the same purchases; one control also holds an unbought large unit: its mean could be higher
    x = np.r_[np.ones(5), np.zeros(95)]
    light = weighted_poisson_interval(x, np.full(100, 10.0))
    heavy = weighted_poisson_interval(x, np.r_[np.full(99, 10.0), 1000.0])
    assert heavy[0] == pytest.approx(light[0]) and heavy[1] > light[1]


def test_the_p_value_inverts_the_interval() -> None:
    rng = np.random.default_rng(4)
    weights = rng.lognormal(3.0, 1.0, 120)
    bought = rng.random(120) < 0.2
    for shift in (0.0, 3.0, 8.0, 20.0):
        variant = rng.lognormal(3.0, 1.0, 900) * (rng.random(900) < 0.2) + shift
        res = rare_event_difference(variant, bought, weights, alpha=0.05)
        assert res.ci_low < res.estimate < res.ci_high
        assert (res.p_value < 0.05) == (res.ci_low > 0 or res.ci_high < 0)
        assert res.estimate == pytest.approx(variant.mean() - (weights * bought).mean())


def test_the_fixed_part_shifts_the_control_and_bad_input_is_refused() -> None:
    rng = np.random.default_rng(1)
    variant, bought, weights = rng.normal(5, 3, 300), rng.random(80) < 0.3, rng.uniform(0, 20, 80)
    plain = rare_event_difference(variant, bought, weights)
    cost = rare_event_difference(variant, bought, weights, control_offset=np.full(80, -0.5))
    assert cost.estimate == pytest.approx(plain.estimate + 0.5)
    assert (cost.ci_low, cost.ci_high) == pytest.approx((plain.ci_low + 0.5, plain.ci_high + 0.5))
    with pytest.raises(DataError, match="weights"):
        rare_event_difference(variant, bought, -weights)
    assert rare_event_difference(variant[:1], bought, weights).error_code == "too_few_units"
