"""Metrics against scikit-learn, on random inputs with ties, and the lift table by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from cartlift.errors import DataError
from cartlift.predict import (
    binary_metrics,
    brier_score,
    calibration_table,
    expected_calibration_error,
    lift_table,
    log_loss,
    pr_auc,
    roc_auc,
)


@st.composite
def outcomes_and_scores(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 80))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    # coarse scores make many ties; exact 0, 0.1 ... 1 hit the bin edges
    decimals = draw(st.integers(1, 3))
    p = np.round(np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))), decimals)
    return y, p


@settings(max_examples=150, deadline=None)
@given(outcomes_and_scores())
def test_metrics_match_scikit_learn(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    assert log_loss(y, p) == pytest.approx(skm.log_loss(y, p, labels=[0, 1]), rel=1e-12)
    assert brier_score(y, p) == pytest.approx(skm.brier_score_loss(y, p, labels=[0, 1]), rel=1e-12, abs=1e-15)
    if 0 < y.sum() < y.size:
        assert roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), rel=1e-12)
        assert pr_auc(y, p) == pytest.approx(skm.average_precision_score(y, p), rel=1e-12)
        prob_true, prob_pred = calibration_curve(y, p, n_bins=10)
        table = calibration_table(y, p, 10)
        np.testing.assert_allclose([r["observed_rate"] for r in table], prob_true)
        np.testing.assert_allclose([r["mean_predicted"] for r in table], prob_pred)


@settings(max_examples=100, deadline=None)
@given(outcomes_and_scores())
def test_ece_and_lift_invariants(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    ece = expected_calibration_error(y, p)
    assert 0.0 <= ece <= 1.0
    # ECE is the bin-weighted mean |observed - predicted| of the calibration table
    table = calibration_table(y, p)
    assert sum(r["n"] for r in table) == y.size
    rows = lift_table(y, p)
    assert sum(r["n"] for r in rows) == y.size
    assert max(r["n"] for r in rows) - min(r["n"] for r in rows) <= 1
    if y.sum() > 0:
        gains = [r["cumulative_gain"] for r in rows]
        assert all(b >= a for a, b in itertools.pairwise(gains)) and gains[-1] == pytest.approx(1.0)
        assert rows[-1]["cumulative_lift"] == pytest.approx(1.0)


def test_ece_by_hand() -> None:
    # bins [0, .1], (.1, .2] ... : two rows at 0.05 (one positive), two at 0.95 (both positive)
    y = np.array([1, 0, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.95])
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)


def test_lift_table_by_hand() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    p = np.linspace(1, 0.1, 10)
    rows = lift_table(y, p, n_groups=5)
    assert [r["positives"] for r in rows] == [2, 1, 0, 0, 0]
    assert rows[0]["lift"] == pytest.approx(1.0 / 0.3)
    assert [r["cumulative_gain"] for r in rows] == pytest.approx([2 / 3, 1, 1, 1, 1])
    assert rows[1]["cumulative_lift"] == pytest.approx((3 / 4) / 0.3)


def test_summary_and_degenerate_inputs() -> None:
    out = binary_metrics([0, 1, 1, 0], [0.2, 0.7, 0.9, 0.4])
    assert out["roc_auc"] == 1.0 and out["n"] == 4 and out["positive_rate"] == 0.5
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3])) and np.isnan(pr_auc([0, 0], [0.2, 0.3]))


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0.5], "differ in length"),
        ([], [], "No rows to evaluate"),
        ([0, 2], [0.1, 0.2], "only 0 and 1"),
        ([0, 1], [0.1, 1.2], r"probabilities in \[0, 1\]"),
        ([0, 1], [0.1, np.nan], "no NaN"),
    ],
)
def test_bad_inputs_are_explained(y: list[float], p: list[float], match: str) -> None:
    with pytest.raises(DataError, match=match):
        binary_metrics(y, p)
