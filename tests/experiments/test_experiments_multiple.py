"""A/B/n corrections against statsmodels, and intervals that agree with the adjusted p-values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from cartlift.experiments import AnalysisConfig, SampleStats, adjust_p_values, analyze

P_VALUES = st.lists(st.floats(min_value=1e-12, max_value=1.0), min_size=1, max_size=12)


@settings(max_examples=12, deadline=None)  # statsmodels' Holm takes ~0.1 s a call
@given(P_VALUES)
def test_holm_equals_statsmodels(p: list[float]) -> None:
    np.testing.assert_allclose(adjust_p_values(p, "holm"), multipletests(p, method="holm")[1], rtol=1e-12)


@given(P_VALUES)
def test_benjamini_hochberg_equals_statsmodels(p: list[float]) -> None:
    np.testing.assert_allclose(adjust_p_values(p, "bh"), multipletests(p, method="fdr_bh")[1], rtol=1e-12)


def test_no_correction_returns_the_p_values() -> None:
    assert adjust_p_values([0.01, 0.2], "none").tolist() == [0.01, 0.2]


ARMS = st.lists(st.integers(min_value=150, max_value=260), min_size=2, max_size=5)


@settings(max_examples=30, deadline=None)
@given(
    conversions=ARMS,
    correction=st.sampled_from(["holm", "bh"]),
    method=st.sampled_from(["frequentist", "sequential"]),
)
def test_adjusted_intervals_agree_with_adjusted_p_values(
    conversions: list[int], correction: str, method: str
) -> None:
    data = {"control": SampleStats.from_counts(200, 2000)}
    data.update({f"v{i}": SampleStats.from_counts(x, 2000) for i, x in enumerate(conversions)})
    config = AnalysisConfig(correction=correction, method=method, tuning_n=4000.0)
    result = analyze(data, config=config)
    for v in result.variants[1:]:
        assert v.p_value_adjusted is not None and v.ci_low is not None and v.ci_high is not None
        excludes_zero = v.ci_low > 0 or v.ci_high < 0
        # on the boundary itself (p_adj == alpha) both readings are "not significant"
        if abs(v.p_value_adjusted - 0.05) > 1e-9:
            assert excludes_zero == (v.p_value_adjusted < 0.05), (
                v.name,
                v.p_value_adjusted,
                v.ci_low,
                v.ci_high,
            )
        assert v.ci_low <= v.ci_low_unadjusted + 1e-12 and v.ci_high >= v.ci_high_unadjusted - 1e-12


def test_three_arm_holm_matches_statsmodels_inside_analyze() -> None:
    data = {
        "control": SampleStats.from_counts(500, 5000),
        "b": SampleStats.from_counts(560, 5000),
        "c": SampleStats.from_counts(590, 5000),
        "d": SampleStats.from_counts(505, 5000),
    }
    result = analyze(data, config=AnalysisConfig(correction="holm"))
    raw = [v.p_value for v in result.variants[1:]]
    expected = multipletests(raw, method="holm")[1]
    assert [v.p_value_adjusted for v in result.variants[1:]] == pytest.approx(list(expected), rel=1e-12)
