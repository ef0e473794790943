"""Frequentist tests against scipy and statsmodels on the same data, and gbstats' published example."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion as smp

from cartlift.errors import InvalidParameterError
from cartlift.experiments import (
    ArmEstimate,
    SampleStats,
    chi_square_test,
    difference_test,
    fisher_exact_test,
    mean_estimate,
    newcombe_interval,
    srm_test,
    two_proportion_ztest,
    wilson_interval,
)

TIGHT = {"rel": 1e-8, "abs": 1e-12}

TABLES = [  # (control successes, control n, variant successes, variant n)
    (20034, 44700, 20119, 45489),  # cookie_cats retention_1
    (8502, 44700, 8279, 45489),  # cookie_cats retention_7
    (120, 1000, 150, 1000),
    (3, 40, 9, 45),
    (0, 25, 4, 30),
    (7, 7, 3, 9),
]


def _values(x: int, n: int) -> np.ndarray:
    return np.r_[np.ones(x), np.zeros(n - x)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_equals_scipy_on_raw_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.lognormal(3.0, 1.0, size=800)
    b = rng.lognormal(3.05, 1.1, size=650)
    ours = difference_test(
        mean_estimate(SampleStats.from_values(a)), mean_estimate(SampleStats.from_values(b)), relative=False
    )
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours.p_value == pytest.approx(ref.pvalue, **TIGHT)
    assert ours.statistic == pytest.approx(ref.statistic, **TIGHT)
    assert ours.df == pytest.approx(ref.df, **TIGHT)
    assert (ours.ci_low, ours.ci_high) == (pytest.approx(ci.low, **TIGHT), pytest.approx(ci.high, **TIGHT))


def test_gbstats_published_example() -> None:
    """gbstats tests/frequentist/test_tests.py: control 0.41 (sd 3.9, n 3407), treatment 0.70 (sd 6.2, n 3461)."""
    control = ArmEstimate(0.41, 3.9**2 / 3407, 3407)
    treatment = ArmEstimate(0.41 + 0.29, 6.2**2 / 3461, 3461)
    result = difference_test(control, treatment, relative=True)
    assert round(result.estimate, 5) == 0.70732
    assert round(result.std_error, 5) == 0.37879
    assert (round(result.ci_low, 5), round(result.ci_high, 5)) == (-0.03526, 1.44989)
    assert round(result.p_value, 5) == 0.06191


@pytest.mark.parametrize(("xa", "na", "xb", "nb"), TABLES[:4])
def test_two_proportion_ztest_equals_statsmodels(xa: int, na: int, xb: int, nb: int) -> None:
    a, b = SampleStats.from_counts(xa, na), SampleStats.from_counts(xb, nb)
    pooled = two_proportion_ztest(a, b)
    z, p = smp.proportions_ztest([xb, xa], [nb, na])
    assert (pooled.statistic, pooled.p_value) == (pytest.approx(z, **TIGHT), pytest.approx(p, **TIGHT))
    unpooled = two_proportion_ztest(a, b, pooled=False)
    ref = smp.test_proportions_2indep(xb, nb, xa, na, method="wald", compare="diff", correction=False)
    assert unpooled.p_value == pytest.approx(ref.pvalue, **TIGHT)
    low, high = smp.confint_proportions_2indep(xb, nb, xa, na, method="wald", compare="diff")
    assert (pooled.ci_low, pooled.ci_high) == (pytest.approx(low, **TIGHT), pytest.approx(high, **TIGHT))


@pytest.mark.parametrize(("xa", "na", "xb", "nb"), TABLES)
@pytest.mark.parametrize("correction", [False, True])
def test_chi_square_equals_scipy(xa: int, na: int, xb: int, nb: int, correction: bool) -> None:
    ours = chi_square_test(
        SampleStats.from_counts(xa, na), SampleStats.from_counts(xb, nb), correction=correction
    )
    ref = stats.chi2_contingency([[xa, na - xa], [xb, nb - xb]], correction=correction)
    assert ours.statistic == pytest.approx(ref.statistic, **TIGHT)
    assert ours.p_value == pytest.approx(ref.pvalue, **TIGHT)


@pytest.mark.parametrize(("xa", "na", "xb", "nb"), TABLES)
def test_fisher_exact_equals_scipy(xa: int, na: int, xb: int, nb: int) -> None:
    ours = fisher_exact_test(SampleStats.from_counts(xa, na), SampleStats.from_counts(xb, nb))
    ref = stats.fisher_exact([[xa, na - xa], [xb, nb - xb]])
    assert ours.p_value == pytest.approx(ref.pvalue, **TIGHT)


@pytest.mark.parametrize(("x", "n"), [(0, 10), (1, 10), (20034, 44700), (50, 50), (3, 1000)])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_wilson_equals_statsmodels(x: int, n: int, alpha: float) -> None:
    low, high = smp.proportion_confint(x, n, alpha=alpha, method="wilson")
    assert wilson_interval(x, n, alpha=alpha) == (pytest.approx(low, **TIGHT), pytest.approx(high, **TIGHT))


@pytest.mark.parametrize(("xa", "na", "xb", "nb"), TABLES)
def test_newcombe_equals_statsmodels(xa: int, na: int, xb: int, nb: int) -> None:
    ours = newcombe_interval(SampleStats.from_counts(xa, na), SampleStats.from_counts(xb, nb))
    low, high = smp.confint_proportions_2indep(xb, nb, xa, na, method="newcomb", compare="diff")
    assert (ours.ci_low, ours.ci_high) == (pytest.approx(low, **TIGHT), pytest.approx(high, **TIGHT))


def test_welch_on_binary_values_equals_scipy() -> None:
    """Conversions go through the same Welch test as any mean: check it on the raw 0/1 values."""
    xa, na, xb, nb = TABLES[1]
    ours = difference_test(
        mean_estimate(SampleStats.from_counts(xa, na)),
        mean_estimate(SampleStats.from_counts(xb, nb)),
        relative=False,
    )
    ref = stats.ttest_ind(_values(xb, nb), _values(xa, na), equal_var=False)
    assert ours.p_value == pytest.approx(ref.pvalue, **TIGHT)


@pytest.mark.parametrize(
    ("counts", "shares"),
    [({"a": 44700, "b": 45489}, None), ({"a": 1000, "b": 2100, "c": 950}, {"a": 0.25, "b": 0.5, "c": 0.25})],
)
def test_srm_equals_scipy_chisquare(counts: dict[str, int], shares: dict[str, float] | None) -> None:
    result = srm_test(counts, shares, warn=False)
    observed = np.array(list(counts.values()), dtype=float)
    weights = np.full(len(counts), 1 / len(counts)) if shares is None else np.array(list(shares.values()))
    ref = stats.chisquare(observed, observed.sum() * weights)
    assert result.p_value == pytest.approx(ref.pvalue, **TIGHT)
    assert result.statistic == pytest.approx(ref.statistic, **TIGHT)


@pytest.mark.parametrize(
    ("control", "variant", "relative", "code"),
    [
        (ArmEstimate(0.0, 0.0, 0), ArmEstimate(0.1, 0.001, 100), True, "too_few_units"),
        (ArmEstimate(0.0, 0.001, 100), ArmEstimate(0.1, 0.001, 100), True, "zero_control_mean"),
        (ArmEstimate(1.0, 0.0, 100), ArmEstimate(1.0, 0.0, 100), False, "zero_variance"),
    ],
)
def test_degenerate_data_gives_a_result_with_a_message(
    control: ArmEstimate, variant: ArmEstimate, relative: bool, code: str
) -> None:
    result = difference_test(control, variant, relative=relative)
    assert result.error_code == code
    assert result.error_message
    assert result.p_value == 1.0
    assert np.isfinite([result.estimate, result.ci_low, result.ci_high]).all()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: difference_test(ArmEstimate(1, 1, 9), ArmEstimate(1, 1, 9), alpha=1.5),
            "alpha must be a float in",
        ),
        (lambda: two_proportion_ztest(SampleStats(10, 5.0, 7.0), SampleStats(10, 5.0, 5.0)), "0/1 metric"),
        (lambda: SampleStats.from_counts(11, 10), "successes must be in"),
        (lambda: SampleStats(-1, 0.0, 0.0), "must be a count"),
        (lambda: SampleStats(3, float("nan"), 0.0), "finite number"),
    ],
)
def test_misuse_raises(call: object, match: str) -> None:
    with pytest.raises((InvalidParameterError, ValueError), match=match):
        call()  # type: ignore[operator]
