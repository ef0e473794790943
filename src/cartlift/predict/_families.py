"""The other model families marketers are told to try, from scikit-learn, on the same footing.

A decision tree, a random forest, a support vector machine and a multi-layer perceptron take
the same tables as `LightGBMModel` (the same `TableEncoder`; the SVM and the MLP see the
standardised one-hot `LinearDesign`, the trees the codes, missing values included) and give
probabilities the same way: a score per row turned into a probability by the shared
calibrators. The SVM's decision values are not probabilities at all, so it is always
calibrated (Platt's sigmoid on held-out rows, Platt 1999); the tree and the forest give vote
shares, calibrated by the same sigmoid; the MLP's softmax is used as is.

They are here to be compared (`cartlift abandonment evaluate --models ...`); they have no exact
SHAP values and are not saved (a model to keep is `LightGBMModel`, `LogisticModel` or
`BlendModel`, which save without pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from cartlift._params import Constraint, Interval, Options
from cartlift.errors import DataError
from cartlift.predict._encode import LinearDesign
from cartlift.predict._models import _BinaryModel

__all__ = ["ForestModel", "MLPModel", "SVMModel", "TreeModel"]

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=float)


class _SklearnModel(_BinaryModel):
    """A scikit-learn classifier behind the shared encoding, hold-out and calibration."""

    linear_design: ClassVar[bool] = False
    """Whether the estimator sees the one-hot standardised design (else the encoder's codes)."""

    def _estimator(self, seed: int) -> Any:
        raise NotImplementedError

    def _inputs(self, codes: np.ndarray) -> np.ndarray:
        return self.design_.transform(codes) if self.linear_design else codes

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
        if self.linear_design:
            self.design_ = LinearDesign().fit(X, self.encoder_)
        self.estimator_ = self._estimator(int(rng.integers(2**31 - 1)))
        if w is None or not self._takes_weights():
            self.estimator_.fit(self._inputs(X), y)
        else:
            self.estimator_.fit(self._inputs(X), y, sample_weight=w)

    def _takes_weights(self) -> bool:
        return True

    def _raw(self, codes: np.ndarray) -> np.ndarray:
        return _logit(self.estimator_.predict_proba(self._inputs(codes))[:, 1])

    def _contributions(self, codes: np.ndarray) -> np.ndarray:
        raise DataError(
            f"A {self.kind} model has no exact SHAP values; feature importances come from "
            "lightgbm, logistic or blend."
        )

    def _core_to_dict(self, folder: Path) -> dict[str, Any]:
        raise DataError(
            f"A {self.kind} model is for comparison and is not saved; train lightgbm, logistic, "
            "blend or auto to keep a model."
        )

    def _core_from_dict(self, data: dict[str, Any], folder: Path) -> None:  # pragma: no cover
        raise DataError(f"A {self.kind} model cannot be loaded.")


class TreeModel(_SklearnModel):
    """One decision tree (CART, ``sklearn.tree.DecisionTreeClassifier``), vote shares calibrated.

    Parameters
    ----------
    max_depth : int
        Deepest split.
    min_samples_leaf : int
        Fewest rows in a leaf.
    class_weight, calibration, validation_fraction, max_categories, random_state
        As in `LightGBMModel`.
    """

    kind = "tree"
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "max_depth": [Interval(int, 1, None)],
        "min_samples_leaf": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        max_depth: int = 6,
        min_samples_leaf: int = 20,
        class_weight: str | float | None = None,
        calibration: str | None = "sigmoid",
        validation_fraction: float = 0.2,
        max_categories: int = 100,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.calibration = calibration
        self.validation_fraction = validation_fraction
        self.max_categories = max_categories
        self.random_state = random_state

    def _estimator(self, seed: int) -> Any:
        return DecisionTreeClassifier(
            max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf, random_state=seed
        )


class ForestModel(_SklearnModel):
    """A random forest (Breiman 2001, ``sklearn.ensemble.RandomForestClassifier``), votes calibrated.

    Parameters
    ----------
    n_estimators : int
        Trees.
    min_samples_leaf : int
        Fewest rows in a leaf.
    max_features : float
        Share of the columns each split may choose from.
    n_jobs : int or None
        Threads (None: one).
    class_weight, calibration, validation_fraction, max_categories, random_state
        As in `LightGBMModel`.
    """

    kind = "forest"
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "n_estimators": [Interval(int, 1, None)],
        "min_samples_leaf": [Interval(int, 1, None)],
        "max_features": [Interval(float, 0, 1, closed="right")],
        "n_jobs": [None, Interval(int, 1, None)],
    }

    def __init__(
        self,
        n_estimators: int = 200,
        min_samples_leaf: int = 3,
        max_features: float = 0.33,
        n_jobs: int | None = None,
        class_weight: str | float | None = None,
        calibration: str | None = "sigmoid",
        validation_fraction: float = 0.2,
        max_categories: int = 100,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.class_weight = class_weight
        self.calibration = calibration
        self.validation_fraction = validation_fraction
        self.max_categories = max_categories
        self.random_state = random_state

    def _estimator(self, seed: int) -> Any:
        return RandomForestClassifier(
            n_estimators=self.n_estimators,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            n_jobs=self.n_jobs,
            random_state=seed,
        )


class SVMModel(_SklearnModel):
    """A support vector machine with an RBF kernel (``sklearn.svm.SVC``), Platt-calibrated.

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    gamma : float or "scale"
        RBF kernel width; "scale" is ``1 / (n_features * Var(X))``.
    calibration : {"sigmoid", "isotonic"}
        How decision values become probabilities (an SVM always needs one).
    class_weight, validation_fraction, max_categories, random_state
        As in `LightGBMModel`.
    """

    kind = "svm"
    linear_design = True
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "C": [Interval(float, 0, None, closed="neither")],
        "gamma": [Options(("scale",)), Interval(float, 0, None, closed="neither")],
        "calibration": [Options(("isotonic", "sigmoid"))],
    }

    def __init__(
        self,
        C: float = 1.0,
        gamma: str | float = "scale",
        class_weight: str | float | None = None,
        calibration: str | None = "sigmoid",
        validation_fraction: float = 0.2,
        max_categories: int = 100,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.C = C
        self.gamma = gamma
        self.class_weight = class_weight
        self.calibration = calibration
        self.validation_fraction = validation_fraction
        self.max_categories = max_categories
        self.random_state = random_state

    def _estimator(self, seed: int) -> Any:
        return SVC(C=self.C, gamma=self.gamma, kernel="rbf", cache_size=500, random_state=seed)

    def _raw(self, codes: np.ndarray) -> np.ndarray:
        # signed distance to the margin: an uncalibrated score the calibrator maps to a probability
        return np.asarray(self.estimator_.decision_function(self._inputs(codes)), dtype=float)


class MLPModel(_SklearnModel):
    """A multi-layer perceptron (``sklearn.neural_network.MLPClassifier``, Adam, early stopping).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units per hidden layer.
    alpha : float
        L2 penalty.
    max_iter : int
        Most epochs.
    class_weight, calibration, validation_fraction, max_categories, random_state
        As in `LightGBMModel` (class weights are not supported by the MLP and raise).
    """

    kind = "mlp"
    linear_design = True
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "hidden_layer_sizes": [tuple],
        "alpha": [Interval(float, 0, None)],
        "max_iter": [Interval(int, 1, None)],
        "class_weight": [None],
    }

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (64, 32),
        alpha: float = 1e-3,
        max_iter: int = 300,
        class_weight: str | float | None = None,
        calibration: str | None = None,
        validation_fraction: float = 0.2,
        max_categories: int = 100,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.calibration = calibration
        self.validation_fraction = validation_fraction
        self.max_categories = max_categories
        self.random_state = random_state

    def _estimator(self, seed: int) -> Any:
        return MLPClassifier(
            hidden_layer_sizes=self.hidden_layer_sizes,
            alpha=self.alpha,
            max_iter=self.max_iter,
            early_stopping=True,
            random_state=seed,
        )

    def _takes_weights(self) -> bool:
        return False
