"""Power, sample size and MDE against statsmodels' NormalIndPower."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower

from cartlift.errors import InvalidParameterError
from cartlift.experiments import (
    detectable,
    expected_duration,
    minimum_detectable_effect,
    plan,
    power,
    sample_size,
)


def _cohen(p1: float, p2: float) -> float:
    return (p2 - p1) / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)


@pytest.mark.parametrize(
    ("baseline", "lift", "n"), [(0.10, 0.10, 10_000), (0.03, 0.05, 200_000), (0.5, -0.02, 30_000)]
)
def test_power_of_a_conversion_test_equals_statsmodels(baseline: float, lift: float, n: int) -> None:
    d = _cohen(baseline, baseline * (1 + lift))
    assert power(baseline, lift, n) == pytest.approx(NormalIndPower().power(d, n, 0.05), rel=1e-10)


@pytest.mark.parametrize(("ratio", "alpha"), [(1.0, 0.05), (2.0, 0.05), (0.5, 0.01)])
def test_continuous_power_and_sample_size_equal_statsmodels(ratio: float, alpha: float) -> None:
    ref = NormalIndPower()
    assert power(10.0, 0.5, 700, sd=4.0, relative=False, alpha=alpha, ratio=ratio) == pytest.approx(
        ref.power(0.5 / 4.0, 700, alpha, ratio=ratio), rel=1e-10
    )
    ours = sample_size(10.0, 0.5, sd=4.0, relative=False, alpha=alpha, ratio=ratio)
    assert ours == pytest.approx(ref.solve_power(0.5 / 4.0, None, alpha, 0.8, ratio=ratio), rel=1e-6)
    assert power(10.0, 0.5, ours, sd=4.0, relative=False, alpha=alpha, ratio=ratio) == pytest.approx(
        0.8, abs=1e-10
    )


def test_sample_size_and_mde_are_inverse() -> None:
    n = sample_size(0.05, 0.1)
    assert minimum_detectable_effect(0.05, n) == pytest.approx(0.1, rel=1e-8)
    assert power(0.05, 0.1, n) == pytest.approx(0.8, abs=1e-10)
    # the textbook closed form without the far tail: 16 * p(1-p) / delta^2 rule of thumb scale
    closed = (1.959964 + 0.841621) ** 2 * (0.05 * 0.95 + 0.055 * 0.945) / 0.005**2
    assert n == pytest.approx(closed, rel=1e-4)


def test_plan_uses_bonferroni_for_more_arms_and_gives_the_duration() -> None:
    two, three = plan(0.05, 0.1), plan(0.05, 0.1, variants=3, daily_units=10_000, coverage=0.5)
    assert three.alpha_per_comparison == pytest.approx(0.025)
    assert three.units_per_variant > two.units_per_variant
    assert three.units_total == 3 * three.units_per_variant
    assert three.days == math.ceil(three.units_total / 5_000)
    assert expected_duration(10_001, 1_000) == 11


def test_mde_is_infinite_when_nothing_is_detectable() -> None:
    assert np.isinf(minimum_detectable_effect(0.5, 3))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: power(0.1, 0.1, 0), "n_per_variant must be a number > 0"),
        (lambda: power(1.5, 0.1, 100), "baseline must be in"),
        (lambda: sample_size(0.1, 0.0), "effect must be non-zero"),
        (lambda: sample_size(0.1, 0.1, power=1.2), "power must be a float in"),
        (lambda: plan(0.1, 0.1, variants=1), "variants must be an int >= 2"),
        (lambda: expected_duration(100, 10, coverage=2.0), "coverage must be in"),
    ],
)
def test_power_misuse_raises(call: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        call()  # type: ignore[operator]


def test_detectable_reports_mde_and_power_with_bonferroni() -> None:
    out = detectable(0.1, 20_000, effect=0.05, variants=3)
    assert out["alpha_per_comparison"] == pytest.approx(0.025)
    d = _cohen(0.1, 0.105)
    assert out["power_for_effect"] == pytest.approx(NormalIndPower().power(d, 20_000, 0.025), rel=1e-10)
    assert power(0.1, out["minimum_detectable_effect"], 20_000, alpha=0.025) == pytest.approx(0.8, abs=1e-9)
