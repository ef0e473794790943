"""A blend of gradient-boosted trees and a logistic regression, averaged in log-odds.

Boosted trees find interactions and thresholds; a linear model extrapolates smoothly along
the strong monotone signals (page value, cart value) where trees step. Averaging their log-odds
(Wolpert 1992, stacking with fixed weights) often ranks better than either on small, noisy
tables, and keeps everything a saved model needs: SHAP values are linear in the blend (the
weighted sum of both models' exact SHAP values), and both parts save without pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cartlift._params import Constraint, Interval
from cartlift.predict._models import LIGHTGBM_PARAMETERS, LightGBMModel, LogisticModel, _BinaryModel

__all__ = ["BlendModel"]


class BlendModel(_BinaryModel):
    """``w * LightGBM + (1 - w) * logistic`` in log-odds, calibrated like the others.

    Parameters
    ----------
    lightgbm_weight : float
        ``w``, the boosted trees' share of the log-odds.
    n_estimators, learning_rate, num_leaves, min_child_samples, colsample_bytree, subsample, reg_lambda
        As in `LightGBMModel`; the trees train for a fixed ``n_estimators`` rounds (no early stopping).
    C : float
        The logistic part's inverse regularisation.
    n_jobs : int or None
        LightGBM threads.
    class_weight, calibration, validation_fraction, max_categories, random_state
        As in `LightGBMModel`.

    Attributes
    ----------
    lightgbm_ : LightGBMModel
    logistic_ : LogisticModel
        The two parts, sharing this model's encoder.
    """

    kind = "blend"
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "lightgbm_weight": [Interval(float, 0, 1)],
        **LIGHTGBM_PARAMETERS,
        "C": LogisticModel._parameter_constraints["C"],
    }

    def __init__(
        self,
        lightgbm_weight: float = 0.7,
        n_estimators: int = 300,
        learning_rate: float = 0.03,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        colsample_bytree: float = 1.0,
        subsample: float = 1.0,
        reg_lambda: float = 0.0,
        C: float = 1.0,
        n_jobs: int | None = None,
        class_weight: str | float | None = None,
        calibration: str | None = "sigmoid",
        validation_fraction: float = 0.2,
        max_categories: int = 100,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.lightgbm_weight = lightgbm_weight
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.subsample = subsample
        self.reg_lambda = reg_lambda
        self.C = C
        self.n_jobs = n_jobs
        self.class_weight = class_weight
        self.calibration = calibration
        self.validation_fraction = validation_fraction
        self.max_categories = max_categories
        self.random_state = random_state

    def _parts(self) -> None:
        trees = {name: getattr(self, name) for name in LIGHTGBM_PARAMETERS}
        self.lightgbm_ = LightGBMModel(**trees, early_stopping_rounds=None, calibration=None)
        self.logistic_ = LogisticModel(C=self.C)
        self.lightgbm_.encoder_ = self.logistic_.encoder_ = self.encoder_

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
        self._parts()
        empty = np.empty((0, X.shape[1]))
        self.lightgbm_._fit_core(X, y, w, empty, np.empty(0), None, rng)
        self.logistic_._fit_core(X, y, w, empty, np.empty(0), None, rng)

    def _raw(self, codes: np.ndarray) -> np.ndarray:
        a = self.lightgbm_weight
        return a * self.lightgbm_._raw(codes) + (1 - a) * self.logistic_._raw(codes)

    def _contributions(self, codes: np.ndarray) -> np.ndarray:
        a = self.lightgbm_weight
        return a * self.lightgbm_._contributions(codes) + (1 - a) * self.logistic_._contributions(codes)

    def _core_to_dict(self, folder: Path) -> dict[str, Any]:
        return {
            "lightgbm": self.lightgbm_._core_to_dict(folder),
            "logistic": self.logistic_._core_to_dict(folder),
        }

    def _core_from_dict(self, data: dict[str, Any], folder: Path) -> None:
        self._parts()
        self.lightgbm_._core_from_dict(data["lightgbm"], folder)
        self.logistic_._core_from_dict(data["logistic"], folder)
