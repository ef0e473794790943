"""Uplift metrics against scikit-uplift (live when installed, and its values frozen here), by hand and by Monte Carlo."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartlift.act import (
    auuc_score,
    evaluate_uplift,
    qini_auc_score,
    qini_curve,
    true_qini_score,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
)
from cartlift.errors import DataError, InvalidParameterError

# a 20-row table with ties in the scores; the expected values were computed with scikit-uplift
# 0.5.1 (sklift.metrics) on exactly these arrays
Y = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0])
T = np.array([1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1])
S = np.array(
    [0.9, 0.8, 0.8, 0.7, 0.6, 0.55, 0.5, 0.5, 0.45, 0.4, 0.3, 0.3, 0.3, 0.2, 0.15, 0.1, 0.05, 0.0, -0.1, -0.2]
)


def test_frozen_scikit_uplift_values() -> None:
    assert qini_auc_score(Y, S, T) == pytest.approx(0.08608722676888018, rel=1e-12)
    assert qini_auc_score(Y, S, T, negative_effect=False) == pytest.approx(5.968874700718301, rel=1e-12)
    assert uplift_auc_score(Y, S, T) == pytest.approx(0.10133236921529173, rel=1e-12)
    assert uplift_at_k(Y, S, T, k=0.3) == pytest.approx(0.0, abs=1e-12)
    assert uplift_at_k(Y, S, T, k=0.3, strategy="by_group") == pytest.approx(0.16666666666666663)
    assert uplift_at_k(Y, S, T, k=7) == pytest.approx(0.16666666666666669)
    x, q = qini_curve(Y, S, T)
    np.testing.assert_array_equal(x, [0, 1, 3, 4, 5, 6, 8, 9, 10, 13, 14, 15, 16, 17, 18, 19, 20])
    np.testing.assert_allclose(q[:5], [0.0, 1.0, -1.0, -1.0, 0.5])
    # by hand: after the tied pair at 0.8 two treated (one buyer) and one control buyer: 1 - 1 * 2/1
    assert q[2] == -1.0


def test_auuc_is_the_uplift_curve_area_on_the_unit_square() -> None:
    x, u = uplift_curve(Y, S, T)
    assert auuc_score(Y, S, T) == pytest.approx(np.trapezoid(u, x) / (x[-1] * abs(u[-1])))
    assert auuc_score(Y, S, T) == pytest.approx(3.3778392857142827)  # scikit-uplift's curve, same area


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_uplift_on_random_data(seed: int) -> None:
    metrics = pytest.importorskip("sklift.metrics", reason="scikit-uplift is the test-only reference")
    from sklearn.metrics import auc

    rng = np.random.default_rng(seed)
    n = 3000
    y, t = rng.integers(0, 2, n), rng.integers(0, 2, n)
    s = np.round(rng.normal(size=n), 1)  # many ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-uplift calls a deprecated scikit-learn helper
        assert qini_auc_score(y, s, t) == pytest.approx(metrics.qini_auc_score(y, s, t), rel=1e-10)
        assert uplift_auc_score(y, s, t) == pytest.approx(metrics.uplift_auc_score(y, s, t), rel=1e-10)
        for strategy in ("overall", "by_group"):
            assert uplift_at_k(y, s, t, k=0.3, strategy=strategy) == pytest.approx(
                metrics.uplift_at_k(y, s, t, strategy=strategy, k=0.3), abs=1e-12
            )
        x, v = metrics.uplift_curve(y, s, t)
        assert auuc_score(y, s, t) == pytest.approx(auc(x, v) / (x[-1] * abs(v[-1])), rel=1e-10)
        np.testing.assert_allclose(qini_curve(y, s, t)[1], metrics.qini_curve(y, s, t)[1])


def test_random_targeting_scores_zero_and_one_half() -> None:
    rng = np.random.default_rng(7)
    n = 4000
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.2 + 0.1 * t).astype(int)
    qini = [qini_auc_score(y, rng.random(n), t) for _ in range(200)]
    auuc = [auuc_score(y, rng.random(n), t) for _ in range(200)]
    assert abs(np.mean(qini)) < 0.01 and abs(np.mean(auuc) - 0.5) < 0.01
    # the perfect ranking scores 1 by construction
    assert qini_auc_score(y, y * t - y * (1 - t), t) == pytest.approx(1.0)


def test_true_qini_scores_rankings_of_known_effects() -> None:
    tau = np.linspace(-0.1, 0.3, 101)
    assert true_qini_score(tau, tau) == pytest.approx(1.0)
    assert true_qini_score(tau, -tau) < -0.9
    assert (
        abs(np.mean([true_qini_score(tau, np.random.default_rng(i).random(101)) for i in range(300)])) < 0.03
    )


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_uplift_at_k_lies_in_the_outcome_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 50
    y, t, s = rng.integers(0, 2, n), np.r_[0, 1, rng.integers(0, 2, n - 2)], rng.normal(size=n)
    value = uplift_at_k(y, s, t, k=0.5)
    assert np.isnan(value) or -1.0 <= value <= 1.0


def test_evaluate_uplift_scores_each_treatment_against_the_control() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    arms = rng.choice(["none", "mail", "sms"], n)
    x = rng.random(n)
    y = (rng.random(n) < 0.1 + np.where(arms == "mail", 0.3 * x, 0.0)).astype(int)
    out = evaluate_uplift(y, arms, np.column_stack([x, -x]), ["mail", "sms"], "none")
    # the true ranking: far above random (0 and 0.5), though the observed-data "perfect" is out of reach
    assert out["mail"]["qini"] > 0.1 and out["mail"]["auuc"] > 0.6
    assert abs(out["sms"]["qini"]) < 0.1
    assert out["mail"]["n_treated"] + out["mail"]["n_control"] == int(np.isin(arms, ["none", "mail"]).sum())
    assert len(out["mail"]["qini_curve"]["gain"]) == 21


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (([1, 0], [0.1], [1, 0]), {}, DataError, "same length"),
        (([1, 0], [0.1, 0.2], [1, 2]), {}, DataError, "treatment must be 0/1"),
        (([1, 0], [0.1, 0.2], [1, 1]), {}, DataError, "Both groups are needed"),
        (([1, 2], [0.1, 0.2], [1, 0]), {}, DataError, "y_true must be binary"),
        (([1, 0], [np.nan, 0.2], [1, 0]), {}, DataError, "finite"),
        (([], [], []), {}, DataError, "empty"),
        ((Y, S, T), {"k": 1.5}, InvalidParameterError, "k must be a float in"),
        ((Y, S, T), {"k": 0}, InvalidParameterError, "k must be a float in"),
        ((Y, S, T), {"strategy": "top"}, InvalidParameterError, "strategy must be"),
    ],
)
def test_invalid_input_is_refused(args: tuple, kwargs: dict, error: type, match: str) -> None:
    fn = uplift_at_k if kwargs else qini_auc_score
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)
