"""Abandonment models with the scikit-learn estimator API: LightGBM and a logistic baseline.

Both take any table (categorical and boolean columns are encoded for the user), hold out a
stratified part of the training rows to stop boosting early and to fit the calibrator, and can
weight the classes. Weighting shifts the log-odds by ``log(w+ / w-)``; the models subtract that
shift again, so their scores stay probabilities and the calibrator only fine-tunes them.

References: Ke et al. (2017), "LightGBM: a highly efficient gradient boosting decision tree";
Niculescu-Mizil & Caruana (2005), "Predicting good probabilities with supervised learning".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from cartlift._params import Constraint, Interval, Options, validate_params
from cartlift._random import check_random_state
from cartlift.errors import DataError, InvalidParameterError, NotFittedError
from cartlift.predict._calibration import (
    Calibrator,
    IsotonicCalibrator,
    SigmoidCalibrator,
    calibrator_from_dict,
    sigmoid,
)
from cartlift.predict._encode import LinearDesign, TableEncoder, as_frame

__all__ = ["LightGBMModel", "LogisticModel"]

_CALIBRATORS: dict[str, type[IsotonicCalibrator] | type[SigmoidCalibrator]] = {
    "isotonic": IsotonicCalibrator,
    "sigmoid": SigmoidCalibrator,
}


def binary_labels(y: Any) -> tuple[np.ndarray, list[Any]]:
    """0/1 outcomes and the two classes (sorted; the second is the positive one)."""
    values = pd.Series(np.asarray(y).ravel())
    if values.isna().any():
        raise DataError(f"The label has {int(values.isna().sum())} missing value(s); drop or fill them.")
    classes = sorted(pd.unique(values).tolist())
    if len(classes) != 2:
        shown = ", ".join(repr(c) for c in classes[:5])
        raise DataError(f"The label must have exactly two values; it has {len(classes)}: {shown}.")
    return (values.to_numpy() == classes[1]).astype(float), [_plain(c) for c in classes]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _stratified_split(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, held out) with ``fraction`` of each class held out."""
    held: list[np.ndarray] = []
    for cls in (0.0, 1.0):
        idx = rng.permutation(np.flatnonzero(y == cls))
        k = round(fraction * idx.size)
        if k < 1 or k >= idx.size:
            raise DataError(
                f"Too few rows of class {int(cls)} ({idx.size}) to hold out {fraction:.0%} for early "
                "stopping and calibration; give more rows or set calibration=None and validation_fraction=0."
            )
        held.append(idx[:k])
    valid = np.sort(np.concatenate(held))
    mask = np.ones(y.size, dtype=bool)
    mask[valid] = False
    return np.flatnonzero(mask), valid


class _BinaryModel(ClassifierMixin, BaseEstimator):
    """What both models share: encoding, hold-out, class weights, calibration, saving."""

    kind: ClassVar[str] = ""
    _common: ClassVar[dict[str, list[Constraint]]] = {
        "class_weight": [None, Options(("balanced",)), Interval(float, 0, None, closed="neither")],
        "calibration": [None, Options(("isotonic", "sigmoid"))],
        "validation_fraction": [Interval(float, 0, 0.5, closed="left")],
        "max_categories": [Interval(int, 2, None)],
        "random_state": [None, int, np.random.Generator],
    }
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {}

    class_weight: str | float | None
    calibration: str | None
    validation_fraction: float
    max_categories: int
    random_state: int | np.random.Generator | None

    # -- to implement ----------------------------------------------------------------------------
    def _uses_validation(self) -> bool:
        return self.calibration is not None

    def _fit_core(
        self,
        X: np.ndarray,
        y: np.ndarray,
        w: np.ndarray | None,
        X_val: np.ndarray,
        y_val: np.ndarray,
        w_val: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        raise NotImplementedError

    def _raw(self, codes: np.ndarray) -> np.ndarray:
        """Log-odds of the fitted model, before the class-weight correction."""
        raise NotImplementedError

    def _contributions(self, codes: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _core_to_dict(self, folder: Path) -> dict[str, Any]:
        raise NotImplementedError

    def _core_from_dict(self, data: dict[str, Any], folder: Path) -> None:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> Self:
        """Fit on a table ``X`` (DataFrame or 2-D array) and its binary label ``y``.

        Returns
        -------
        self
        """
        validate_params(self, {**self._common, **self._parameter_constraints})
        if self._uses_validation() and self.validation_fraction == 0:
            raise InvalidParameterError(
                f"The 'validation_fraction' parameter of {type(self).__name__} must be > 0 when "
                f"calibration={self.calibration!r} (the calibrator needs held-out rows). Got 0 instead."
            )
        frame = as_frame(X)
        y01, classes = binary_labels(y)
        if len(frame) != y01.size:
            raise DataError(f"X has {len(frame)} rows but y has {y01.size}.")
        rng = check_random_state(self.random_state)
        self.encoder_ = TableEncoder(max_categories=self.max_categories).fit(frame)
        codes = self.encoder_.transform(frame)
        if self._uses_validation():
            train, valid = _stratified_split(y01, self.validation_fraction, rng)
        else:
            train, valid = np.arange(y01.size), np.arange(0)
        weights, self.prior_shift_ = self._weights(y01[train])
        w = None if weights is None else np.where(y01 == 1, weights[1], weights[0])
        self._fit_core(
            codes[train],
            y01[train],
            None if w is None else w[train],
            codes[valid],
            y01[valid],
            None if w is None else w[valid],
            rng,
        )
        self.calibrator_: Calibrator | None = None
        if self.calibration is not None:
            scores = self._raw(codes[valid]) - self.prior_shift_
            self.calibrator_ = _CALIBRATORS[self.calibration]().fit(scores, y01[valid])
        self.classes_ = np.asarray(classes, dtype=object)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = len(frame.columns)
        self.n_train_ = int(train.size)
        self.n_calibration_ = int(valid.size)
        return self

    def _weights(self, y: np.ndarray) -> tuple[tuple[float, float] | None, float]:
        if self.class_weight is None:
            return None, 0.0
        n_pos = float(y.sum())
        n_neg = y.size - n_pos
        if n_pos == 0 or n_neg == 0:
            raise DataError("The training rows hold only one class; a model needs both.")
        if self.class_weight == "balanced":
            w = (y.size / (2 * n_neg), y.size / (2 * n_pos))
        else:
            w = (1.0, float(self.class_weight))
        return w, math.log(w[1] / w[0])

    def _check_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit() first.")

    def _codes(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return self.encoder_.transform(as_frame(X, list(self.feature_names_in_)))

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of the positive class (class-weight corrected, before calibration), shape (n,)."""
        return self._raw(self._codes(X)) - self.prior_shift_

    def probability(self, scores: np.ndarray) -> np.ndarray:
        """The positive class's probability of decision scores (calibrated when the model is)."""
        if self.calibrator_ is None:
            return sigmoid(scores)
        return self.calibrator_.predict(scores)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, 2), columns in `classes_` order."""
        p = self.probability(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The more likely class of each row."""
        p = self.predict_proba(X)[:, 1]
        return np.where(p >= 0.5, self.classes_[1], self.classes_[0])

    def contributions(self, X: Any) -> pd.DataFrame:
        """Each feature's additive share of the log-odds (SHAP values), plus a ``bias`` column.

        Rows sum to `decision_function`. LightGBM gives exact tree SHAP values
        (``pred_contrib``, Lundberg et al. 2020); the logistic model gives
        ``coef * (x - training mean)``, the SHAP values of a linear model with independent
        features. Calibration is monotone and applied after, so it does not change the order.
        """
        contrib = self._contributions(self._codes(X))
        contrib[:, -1] -= self.prior_shift_
        return pd.DataFrame(contrib, columns=[*self.encoder_.columns_, "bias"])

    def feature_importance(self, X: Any) -> pd.Series:
        """Mean absolute SHAP value of each feature on ``X``, largest first."""
        contrib = self.contributions(X).drop(columns="bias")
        return contrib.abs().mean().sort_values(ascending=False)

    # -- saving ----------------------------------------------------------------------------------
    def save(self, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write the model to ``folder`` (``model.json`` and, for LightGBM, ``model.txt``); no pickle."""
        self._check_fitted()
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        data = {
            "kind": self.kind,
            "params": {k: v for k, v in self.get_params().items() if k != "random_state"},
            "classes": [_plain(c) for c in self.classes_],
            "features": [str(c) for c in self.feature_names_in_],
            "encoder": self.encoder_.to_dict(),
            "prior_shift": self.prior_shift_,
            "calibrator": None if self.calibrator_ is None else self.calibrator_.to_dict(),
            "n_train": self.n_train_,
            "n_calibration": self.n_calibration_,
            "core": self._core_to_dict(path),
            "metadata": metadata or {},
        }
        (path / "model.json").write_text(json.dumps(data, indent=1))
        return path

    def _restore(self, data: dict[str, Any], folder: Path) -> None:
        self.classes_ = np.asarray(data["classes"], dtype=object)
        self.feature_names_in_ = np.asarray(data["features"], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.encoder_ = TableEncoder.from_dict(data["encoder"])
        self.prior_shift_ = float(data["prior_shift"])
        self.calibrator_ = calibrator_from_dict(data["calibrator"])
        self.n_train_ = int(data["n_train"])
        self.n_calibration_ = int(data["n_calibration"])
        self._core_from_dict(data["core"], folder)


LIGHTGBM_PARAMETERS: dict[str, list[Constraint]] = {
    "n_estimators": [Interval(int, 1, None)],
    "learning_rate": [Interval(float, 0, 1, closed="right")],
    "num_leaves": [Interval(int, 2, 131072)],
    "min_child_samples": [Interval(int, 1, None)],
    "reg_lambda": [Interval(float, 0, None)],
    "subsample": [Interval(float, 0, 1, closed="right")],
    "colsample_bytree": [Interval(float, 0, 1, closed="right")],
    "n_jobs": [None, Interval(int, 1, None)],
}
"""The tree parameters of `LightGBMModel` and their constraints; `BlendModel` takes the same and
hands them to its LightGBM part by name."""


class LightGBMModel(_BinaryModel):
    """Gradient-boosted trees (LightGBM) with early stopping, class weights and calibration.

    Parameters
    ----------
    n_estimators : int
        Most boosting rounds; early stopping on the held-out rows usually stops sooner.
    learning_rate : float
        Shrinkage of each tree.
    num_leaves : int
        Leaves per tree. Smaller than LightGBM's 31 by default: whether a cart is bought is a
        noisy outcome, and shallower trees with larger leaves overfit it less.
    min_child_samples : int
        Fewest rows in a leaf.
    reg_lambda : float
        L2 penalty on leaf values.
    subsample, colsample_bytree : float
        Share of rows (per round) and of features (per tree) each tree sees.
    early_stopping_rounds : int or None
        Stop after this many rounds without a better held-out log loss (None: never).
    class_weight : None, "balanced" or float
        None: rows count equally. "balanced": each class weighs half. A float: the weight of a
        positive row relative to a negative one.
    calibration : {"sigmoid", "isotonic"} or None
        How the held-out rows recalibrate the probabilities. Platt's sigmoid (the default) is
        robust on a few thousand rows and leaves well-calibrated boosting nearly unchanged;
        isotonic can fix any monotone distortion but needs more rows to not add noise.
    validation_fraction : float
        Share of each class held out for early stopping and calibration (0 only without either).
    max_categories : int
        Categories kept per text column (see `TableEncoder`).
    n_jobs : int or None
        LightGBM threads. None: one thread below 20,000 training rows (a thread pool costs
        more than it saves on small data, badly so on a busy machine), all cores above.
    random_state : int, Generator or None
        Seeds the hold-out split and LightGBM's sampling.

    Attributes
    ----------
    booster_ : lightgbm.Booster
        The trees, cut at the best round.
    best_iteration_ : int
        Rounds kept.
    encoder_ : TableEncoder
    calibrator_ : IsotonicCalibrator, SigmoidCalibrator or None
    classes_ : ndarray
        The two label values; the second is the positive class.
    """

    kind = "lightgbm"
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        **LIGHTGBM_PARAMETERS,
        "early_stopping_rounds": [None, Interval(int, 1, None)],
    }

    def __init__(
        self,
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        reg_lambda: float = 1.0,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        early_stopping_rounds: int | None = 50,
        class_weight: str | float | None = None,
        calibration: str | None = "sigmoid",
        validation_fraction: float = 0.2,
        max_categories: int = 100,
        n_jobs: int | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.early_stopping_rounds = early_stopping_rounds
        self.class_weight = class_weight
        self.calibration = calibration
        self.validation_fraction = validation_fraction
        self.max_categories = max_categories
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _uses_validation(self) -> bool:
        return self.calibration is not None or self.early_stopping_rounds is not None

    def lgb_params(self, seed: int, rows: int = 0) -> dict[str, Any]:
        """The LightGBM parameters this model trains with on ``rows`` rows."""
        threads = self.n_jobs if self.n_jobs is not None else (1 if rows < 20_000 else 0)
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "lambda_l2": self.reg_lambda,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1 else 0,
            "feature_fraction": self.colsample_bytree,
            "num_threads": threads,
            "seed": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }

    def _fit_core(
        self,
        X: np.ndarray,
        y: np.ndarray,
        w: np.ndarray | None,
        X_val: np.ndarray,
        y_val: np.ndarray,
        w_val: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        cats = self.encoder_.categorical_indices
        params = self.lgb_params(int(rng.integers(2**31 - 1)), X.shape[0])
        train = lgb.Dataset(X, y, weight=w, categorical_feature=cats, free_raw_data=True)
        callbacks: list[Any] = []
        valid_sets = []
        if X_val.shape[0] and self.early_stopping_rounds is not None:
            valid_sets = [lgb.Dataset(X_val, y_val, weight=w_val, categorical_feature=cats, reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        booster = lgb.train(
            params, train, num_boost_round=self.n_estimators, valid_sets=valid_sets, callbacks=callbacks
        )
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        # keep only the rounds that are used, so every later predict (and the live path) is cheaper
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        self.best_iteration_ = int(best)

    def _threads(self, rows: int) -> int:
        # an OpenMP pool costs milliseconds on a busy machine: only worth it for large batches
        return 1 if rows < 10_000 else (self.n_jobs or 0)

    def _raw(self, codes: np.ndarray) -> np.ndarray:
        threads = self._threads(codes.shape[0])
        return np.asarray(self.booster_.predict(codes, raw_score=True, num_threads=threads), dtype=float)

    def _contributions(self, codes: np.ndarray) -> np.ndarray:
        threads = self._threads(codes.shape[0])
        return np.asarray(self.booster_.predict(codes, pred_contrib=True, num_threads=threads), dtype=float)

    def _core_to_dict(self, folder: Path) -> dict[str, Any]:
        self.booster_.save_model(str(folder / "model.txt"))
        return {"booster": "model.txt", "best_iteration": self.best_iteration_}

    def _core_from_dict(self, data: dict[str, Any], folder: Path) -> None:
        self.booster_ = lgb.Booster(model_file=str(folder / data["booster"]))
        self.best_iteration_ = int(data["best_iteration"])


class LogisticModel(_BinaryModel):
    """L2-regularised logistic regression: the baseline.

    Numbers are imputed (median, with a missing indicator) and standardised, categories
    one-hot encoded (`LinearDesign`), then ``sklearn.linear_model.LogisticRegression`` fits.

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    max_iter : int
        Iterations of the L-BFGS solver.
    class_weight, calibration, validation_fraction, max_categories, random_state
        As in `LightGBMModel`; calibration is off by default (the model is calibrated by
        construction unless classes are weighted).

    Attributes
    ----------
    coef_ : ndarray of shape (n_design_columns,)
    intercept_ : float
    design_ : LinearDesign
    """

    kind = "logistic"
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "C": [Interval(float, 0, None, closed="neither")],
        "max_iter": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 1000,
        class_weight: str | float | None = None,
        calibration: str | None = None,
        validation_fraction: float = 0.2,
        max_categories: int = 100,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.calibration = calibration
        self.validation_fraction = validation_fraction
        self.max_categories = max_categories
        self.random_state = random_state

    def _fit_core(
        self,
        X: np.ndarray,
        y: np.ndarray,
        w: np.ndarray | None,
        X_val: np.ndarray,
        y_val: np.ndarray,
        w_val: np.ndarray | None,
        rng: np.random.Generator,
    ) -> None:
        self.design_ = LinearDesign().fit(X, self.encoder_)
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter)
        lr.fit(self.design_.transform(X), y, sample_weight=w)
        self.coef_ = np.asarray(lr.coef_[0], dtype=float)
        self.intercept_ = float(lr.intercept_[0])

    def _raw(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.design_.transform(codes) @ self.coef_ + self.intercept_, dtype=float)

    def _contributions(self, codes: np.ndarray) -> np.ndarray:
        # standardised design columns have training mean 0, so coef * x is each column's SHAP value
        parts = self.design_.transform(codes) * self.coef_
        owners = self.design_.owners()
        out = np.zeros((codes.shape[0], codes.shape[1] + 1))
        np.add.at(out.T, owners, parts.T)
        out[:, -1] = self.intercept_
        return out

    def _core_to_dict(self, folder: Path) -> dict[str, Any]:
        return {"coef": self.coef_.tolist(), "intercept": self.intercept_, "design": self.design_.to_dict()}

    def _core_from_dict(self, data: dict[str, Any], folder: Path) -> None:
        self.coef_ = np.asarray(data["coef"], dtype=float)
        self.intercept_ = float(data["intercept"])
        self.design_ = LinearDesign.from_dict(data["design"])
