"""The models: any table in, calibrated probabilities out, checked against the truth and scikit-learn."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.calibration import _sigmoid_calibration
from sklearn.isotonic import IsotonicRegression

from cartlift.errors import CartliftWarning, DataError, InvalidParameterError, NotFittedError
from cartlift.predict import (
    IsotonicCalibrator,
    LightGBMModel,
    LogisticModel,
    SigmoidCalibrator,
    TableEncoder,
    expected_calibration_error,
    load_model,
    roc_auc,
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def make_table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A table with numbers (some missing), a text category and a boolean; y from a known logit."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(size=n)
    color = rng.choice(["red", "green", "blue"], n)
    flag = rng.random(n) < 0.3
    z = -0.5 + 1.5 * x1 - 2.0 * x2 + 1.2 * (color == "red") - 0.8 * (color == "blue") + 1.0 * flag
    p = _sigmoid(z)
    y = (rng.random(n) < p).astype(int)
    x2_seen = np.where(rng.random(n) < 0.05, np.nan, x2)
    colors = pd.Series(color, dtype=object).where(rng.random(n) > 0.02, None)
    frame = pd.DataFrame({"x1": x1, "x2": x2_seen, "color": colors, "flag": flag})
    return frame, y, p


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    return make_table(10_000, 0)


def _split(t: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> tuple[Any, ...]:
    X, y, p = t
    return X.iloc[:7000], y[:7000], X.iloc[7000:], y[7000:], p[7000:]


@pytest.mark.parametrize(
    "model",
    [
        LightGBMModel(n_jobs=1, random_state=0),
        LogisticModel(random_state=0),
        LightGBMModel(n_jobs=1, random_state=0, calibration="isotonic", class_weight="balanced"),
        LogisticModel(random_state=0, class_weight="balanced"),  # calibrated by the prior shift alone
    ],
    ids=["lightgbm", "logistic", "lightgbm-balanced-isotonic", "logistic-balanced"],
)
def test_models_come_close_to_the_true_probabilities(table: Any, model: Any) -> None:
    X_tr, y_tr, X_te, y_te, p_te = _split(table)
    model.fit(X_tr, y_tr)
    p = model.predict_proba(X_te)[:, 1]
    assert roc_auc(y_te, p) >= 0.97 * roc_auc(y_te, p_te)
    assert expected_calibration_error(y_te, p) <= 0.035
    assert abs(p.mean() - y_te.mean()) < 0.02
    # text and boolean columns were used without any encoding by the caller
    importance = model.feature_importance(X_te)
    assert importance["color"] > 0.05 and importance["flag"] > 0.05


@pytest.mark.parametrize("model", [LightGBMModel(n_jobs=1, random_state=0), LogisticModel(random_state=0)])
def test_shap_values_add_up_to_the_log_odds(table: Any, model: Any) -> None:
    X_tr, y_tr, X_te, *_ = _split(table)
    model.fit(X_tr, y_tr)
    contrib = model.contributions(X_te.iloc[:200])
    assert list(contrib.columns) == ["x1", "x2", "color", "flag", "bias"]
    np.testing.assert_allclose(contrib.sum(axis=1), model.decision_function(X_te.iloc[:200]), atol=1e-9)


@pytest.mark.parametrize(
    "model", [LightGBMModel(n_jobs=1, random_state=1, n_estimators=50), LogisticModel(calibration="isotonic")]
)
def test_save_and_load_give_the_same_predictions_without_pickle(
    table: Any, model: Any, tmp_path: Path
) -> None:
    X_tr, y_tr, X_te, *_ = _split(table)
    model.fit(X_tr, y_tr)
    model.save(tmp_path / "m", metadata={"note": "x"})
    assert {p.suffix for p in (tmp_path / "m").iterdir()} <= {".json", ".txt"}
    loaded, meta = load_model(tmp_path / "m")
    assert meta == {"note": "x"} and type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(X_te), model.predict_proba(X_te))


def test_labels_of_any_type_and_sklearn_conventions(table: Any) -> None:
    X, y, _ = table
    words = np.where(y == 1, "yes", "no")
    model = LogisticModel().fit(X.iloc[:2000], words[:2000])
    assert list(model.classes_) == ["no", "yes"]
    assert set(model.predict(X.iloc[:50])) <= {"no", "yes"}
    assert model.predict_proba(X.iloc[:5]).shape == (5, 2)
    twin = clone(LightGBMModel(num_leaves=7, calibration=None))
    assert twin.get_params()["num_leaves"] == 7 and not hasattr(twin, "booster_")
    # a NumPy array is taken with the training column names
    np.testing.assert_allclose(model.predict_proba(X.iloc[:5].to_numpy()), model.predict_proba(X.iloc[:5]))


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (
            LightGBMModel(n_estimators=0),
            r"The 'n_estimators' parameter of LightGBMModel must be an int >= 1\. Got 0",
        ),
        (LightGBMModel(learning_rate=2.0), "'learning_rate' parameter of LightGBMModel"),
        (LightGBMModel(calibration="beta"), "'calibration' parameter .* 'isotonic', 'sigmoid'"),
        (LightGBMModel(class_weight="auto"), "'class_weight' parameter"),
        (LightGBMModel(validation_fraction=0.0), "must be > 0 when calibration='sigmoid'"),
        (LogisticModel(C=0.0), "'C' parameter of LogisticModel"),
        (LogisticModel(random_state="0"), "'random_state' parameter"),
    ],
)
def test_bad_parameters_are_named(table: Any, model: Any, match: str) -> None:
    X, y, _ = table
    with pytest.raises(InvalidParameterError, match=match):
        model.fit(X.iloc[:500], y[:500])


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.arange(300) % 3, "exactly two values; it has 3"),
        (np.r_[np.zeros(299), np.nan], "missing value"),
        (np.zeros(300), "exactly two values; it has 1"),
        (np.r_[np.zeros(100), np.ones(100)], "X has 300 rows but y has 200"),
    ],
)
def test_bad_labels_are_explained(table: Any, y: np.ndarray, match: str) -> None:
    X, *_ = table
    with pytest.raises(DataError, match=match):
        LogisticModel().fit(X.iloc[:300], y)


def test_unfitted_models_say_so(table: Any) -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        LightGBMModel().predict_proba(table[0])


def test_a_tiny_minority_class_cannot_be_held_out() -> None:
    X = pd.DataFrame({"x": np.arange(40.0)})
    y = np.r_[np.ones(2), np.zeros(38)]
    with pytest.raises(DataError, match="Too few rows of class 1"):
        LightGBMModel(validation_fraction=0.2).fit(X, y)


# -- the encoder ------------------------------------------------------------------------------------


def test_encoder_leaves_out_ids_and_times_with_a_warning() -> None:
    n = 200
    frame = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "when": pd.date_range("2026-01-01", periods=n, freq="h"),
            "amount": np.linspace(1, 2, n),
            "vip": [True, False] * (n // 2),
            "tier": ["gold", "silver", "bronze", "gold"] * (n // 4),
        }
    )
    with pytest.warns(CartliftWarning, match="'order_id' looks like an identifier.*'when' a date"):
        enc = TableEncoder(max_categories=2).fit(frame)
    assert enc.columns_ == ["amount", "vip", "tier"]
    assert enc.kinds_ == {"amount": "numeric", "vip": "bool", "tier": "categorical"}
    assert enc.categories_["tier"] == ["gold", "__other__"]
    codes = enc.transform(pd.DataFrame({"amount": [1.5], "vip": [None], "tier": ["platinum"], "x": [0]}))
    np.testing.assert_array_equal(codes, [[1.5, np.nan, 1.0]])  # unseen level -> the shared "other"
    assert TableEncoder.from_dict(enc.to_dict()).to_dict() == enc.to_dict()
    with pytest.raises(DataError, match="lacks the column"):
        enc.transform(frame[["amount"]])


def test_encoder_needs_one_usable_column() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CartliftWarning)
        with pytest.raises(DataError, match="No usable feature column"):
            TableEncoder().fit(pd.DataFrame({"id": [f"u{i}" for i in range(100)]}))


# -- calibrators against scikit-learn ---------------------------------------------------------------


def test_isotonic_calibrator_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    s = rng.normal(size=2000)
    y = (rng.random(2000) < _sigmoid(2 * s)).astype(float)
    ours = IsotonicCalibrator().fit(s, y)
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)
    grid = np.linspace(-4, 4, 301)
    np.testing.assert_allclose(ours.predict(grid), np.clip(ref.predict(grid), ours.floor_, 1 - ours.floor_))
    assert ours.predict_one(0.3) == pytest.approx(float(ours.predict(np.array([0.3]))[0]))


def test_sigmoid_calibrator_matches_scikit_learn_platt() -> None:
    rng = np.random.default_rng(4)
    s = rng.normal(size=3000)
    y = (rng.random(3000) < _sigmoid(0.7 * s - 0.4)).astype(float)
    ours = SigmoidCalibrator().fit(s, y)
    a, b = _sigmoid_calibration(s, y)  # scikit-learn's P = 1 / (1 + exp(a s + b))
    assert ours.a_ == pytest.approx(-a, rel=1e-4) and ours.b_ == pytest.approx(-b, rel=1e-4, abs=1e-5)
    assert ours.predict_one(-50.0) == pytest.approx(float(ours.predict(np.array([-50.0]))[0]))
