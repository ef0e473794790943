"""S-, T- and X-learners: recover known effects of several treatments, save and load, refuse bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cartlift.act import SLearner, TLearner, UpliftModel, XLearner, true_qini_score, uplift_model_from_dict
from cartlift.errors import DataError, InvalidParameterError, NotFittedError

LEARNERS = [SLearner, TLearner, XLearner]


def _campaign(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Randomised three-arm data with known individual effects on P(buy)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.random(n), "x2": rng.choice(["a", "b"], n), "noise": rng.normal(size=n)})
    arms = rng.choice(["none", "mail", "coupon"], n)
    base = 0.15 + 0.2 * X["x1"].to_numpy()
    tau = {
        "mail": 0.3 * X["x1"].to_numpy(),
        "coupon": np.where(X["x2"].to_numpy() == "b", -0.1, 0.15),
    }
    p = base + np.select([arms == "mail", arms == "coupon"], [tau["mail"], tau["coupon"]], 0.0)
    return X, arms, (rng.random(n) < p).astype(int), tau


@pytest.mark.parametrize("cls", LEARNERS)
def test_learners_rank_the_true_effects_of_each_treatment(cls: type[UpliftModel]) -> None:
    X, arms, y, _ = _campaign(6000, seed=0)
    Xt, _, _, tau = _campaign(3000, seed=1)
    model = cls(random_state=0).fit(X, arms, y, control="none")
    assert model.arms_ == ["none", "coupon", "mail"] and model.treatments_ == ["coupon", "mail"]
    uplift = model.predict(Xt)
    assert uplift.shape == (3000, 2)
    assert true_qini_score(tau["coupon"], uplift[:, 0]) > 0.8
    assert true_qini_score(tau["mail"], uplift[:, 1]) > 0.6
    # the average effect is right to within sampling noise (true means: 0.025 and 0.15)
    assert uplift[:, 0].mean() == pytest.approx(0.025, abs=0.04)
    assert uplift[:, 1].mean() == pytest.approx(0.15, abs=0.04)
    mu = model.predict_outcomes(Xt)
    np.testing.assert_allclose(mu[:, 1:] - mu[:, :1], uplift)


@pytest.mark.parametrize("cls", LEARNERS)
def test_saved_model_predicts_the_same(cls: type[UpliftModel]) -> None:
    X, arms, y, _ = _campaign(1500, seed=2)
    model = cls(n_estimators=20, random_state=3).fit(X, arms, y, control="none")
    again = uplift_model_from_dict(json.loads(model.to_json()))
    np.testing.assert_allclose(again.predict(X), model.predict(X))
    assert type(again) is cls and again.arms_ == model.arms_


def test_same_seed_same_model_and_continuous_outcomes() -> None:
    X, arms, y, _ = _campaign(1500, seed=4)
    a = TLearner(n_estimators=20, random_state=5).fit(X, arms, y, control="none").predict(X)
    b = TLearner(n_estimators=20, random_state=5).fit(X, arms, y, control="none").predict(X)
    np.testing.assert_array_equal(a, b)
    spend = y * 50.0 + X["x1"].to_numpy()  # a continuous outcome (revenue) uses least squares
    model = SLearner(n_estimators=20, random_state=0).fit(X, arms, spend, control="none")
    assert not model.binary_ and model.predict(X).shape == (1500, 2)


def _fit(cls: type[UpliftModel], **overrides: object) -> None:
    X, arms, y, _ = _campaign(300, seed=6)
    args: dict = {"X": X, "treatment": arms, "y": y, "control": "none", **overrides}
    cls(n_estimators=5).fit(args.pop("X"), args.pop("treatment"), args.pop("y"), **args)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"control": "nobody"}, DataError, "The control 'nobody' does not occur"),
        ({"y": np.zeros(10)}, DataError, "same number of rows"),
        ({"treatment": np.full(300, "none")}, DataError, "at least one treatment"),
        ({"treatment": np.r_[["mail"], np.full(299, "none")]}, DataError, "too few for: mail"),
        ({"treatment": np.r_[[None], np.full(299, "none")]}, DataError, "missing value"),
        ({"y": np.r_[[np.nan], np.zeros(299)]}, DataError, "y must be numeric"),
        ({"X": np.zeros(300)}, DataError, "X must be a table"),
    ],
)
def test_invalid_data_is_refused(overrides: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _fit(TLearner, **overrides)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_estimators": 0}, "The 'n_estimators' parameter of SLearner must be an int >= 1. Got 0 instead."),
        ({"learning_rate": 0.0}, "'learning_rate' parameter of SLearner"),
        ({"num_leaves": 1}, "'num_leaves' parameter of SLearner"),
        ({"random_state": "seed"}, "'random_state' parameter of SLearner"),
    ],
)
def test_invalid_parameters_are_refused_in_fit(params: dict, match: str) -> None:
    X, arms, y, _ = _campaign(300, seed=6)
    model = SLearner(**params)  # stored as given; checked in fit
    with pytest.raises(InvalidParameterError, match=match):
        model.fit(X, arms, y, control="none")


def test_unfitted_and_mismatched_features() -> None:
    X, arms, y, _ = _campaign(300, seed=6)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        XLearner().predict(X)
    model = SLearner(n_estimators=5).fit(X, arms, y, control="none")
    with pytest.raises(DataError, match="lacks the column"):
        model.predict(X.drop(columns=["x2"]))
    with pytest.raises(InvalidParameterError, match="Unknown uplift model kind"):
        uplift_model_from_dict({"kind": "r_learner"})
