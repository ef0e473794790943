"""The default model: chosen by cross-validation on the training rows, never by the test rows.

Every candidate is scored by stratified k-fold ROC-AUC on the rows it may learn from; the best
mean wins and is refitted on all of them. Its out-of-fold scores, which no fold's model saw
in training, fit the Platt calibrator, so the final model needs no held-out slice and learns
from every training row. A plain LightGBM (the settings the issue names as the bar: 300 trees,
learning rate 0.03, 15 leaves, text columns as LightGBM categoricals) is one of the
candidates, so the choice can only fall on something that did at least as well under
cross-validation.

Reference: Varma & Simon (2006), "Bias in error estimation when using cross-validation for
model selection" (why the test rows stay out of the choice).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from cartlift.errors import DataError
from cartlift.predict._calibration import SigmoidCalibrator
from cartlift.predict._evaluate import make_model
from cartlift.predict._metrics import roc_auc

__all__ = ["BLENDS", "CANDIDATES", "fit_named", "select_model"]

_NO_HOLDOUT: dict[str, Any] = {"calibration": None, "validation_fraction": 0.0}
_PLAIN: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 20,
    "reg_lambda": 0.0,
}
# many small steps on row and column subsamples: each tree sees a different slice, which
# averages out noise the way a bagged ensemble does, at the cost of one model
_SLOW: dict[str, Any] = {
    "n_estimators": 900,
    "learning_rate": 0.01,
    "num_leaves": 15,
    "min_child_samples": 30,
    "subsample": 0.8,
    "colsample_bytree": 0.7,
    "reg_lambda": 1.0,
}
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "lightgbm_plain": ("lightgbm", {**_PLAIN, "early_stopping_rounds": None}),
    "lightgbm_slow": ("lightgbm", {**_SLOW, "early_stopping_rounds": None}),
    "logistic": ("logistic", {}),
}
"""The single models ``auto`` cross-validates: name -> (model kind, parameters)."""
BLENDS: dict[str, tuple[str, str, float]] = {
    "blend_slow_logistic_0.8": ("lightgbm_slow", "logistic", 0.8),
    "blend_slow_logistic_0.6": ("lightgbm_slow", "logistic", 0.6),
}
"""Blends ``auto`` also considers: name -> (LightGBM candidate, logistic candidate, LightGBM weight).

A blend's out-of-fold log-odds are the weighted sum of its parts' (`BlendModel` trains the
same two models on the same rows with the same seed), so blends cost no extra fits."""


def select_model(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int | None = 0,
    n_jobs: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Choose a model by ``folds``-fold cross-validated ROC-AUC on ``(X, y)`` and fit it on all rows.

    Parameters
    ----------
    X : DataFrame of shape (n, d)
        The training rows only.
    y : ndarray of shape (n,)
        0/1 labels.
    folds : int
        Stratified folds.
    seed : int or None
        Seeds the folds and the models.
    n_jobs : int or None
        Threads for the models that use them.

    Returns
    -------
    model
        The chosen candidate (`CANDIDATES` or `BLENDS`) fitted on every row, calibrated on its
        out-of-fold scores.
    selection : dict
        ``chosen``, ``kind``, ``params``, ``folds`` and per candidate ``cv_roc_auc`` (mean over
        folds) and ``cv_roc_auc_sd``.
    """
    y = np.asarray(y, dtype=float)
    counts = np.bincount(y.astype(int), minlength=2)
    if counts.min() < folds:
        raise DataError(
            f"Choosing a model by {folds}-fold cross-validation needs at least {folds} rows of each class "
            f"in the training part; it has {int(counts[0])} and {int(counts[1])}. Name a --model instead."
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(y.size), y))
    oof: dict[str, np.ndarray] = {}
    for name, (kind, params) in CANDIDATES.items():
        oof[name] = np.empty(y.size)
        for train, test in splits:
            model = make_model(kind, random_state=seed, n_jobs=n_jobs, **{**params, **_NO_HOLDOUT})
            model.fit(X.iloc[train], y[train])
            oof[name][test] = model.decision_function(X.iloc[test])
    for name, (trees, linear, weight) in BLENDS.items():
        oof[name] = weight * oof[trees] + (1 - weight) * oof[linear]
    scores = {name: [roc_auc(y[test], _sigmoid(z[test])) for _, test in splits] for name, z in oof.items()}
    order = list(scores)
    # ties go to the earlier (simpler) candidate
    chosen = max(order, key=lambda n: (float(np.mean(scores[n])), -order.index(n)))
    kind, params = _spec(chosen)
    model = make_model(kind, random_state=seed, n_jobs=n_jobs, **{**params, **_NO_HOLDOUT}).fit(X, y)
    # the calibrator learns from scores of rows no model saw in training: honest, and no rows lost
    model.calibrator_ = SigmoidCalibrator().fit(oof[chosen], y)
    model.n_calibration_ = int(y.size)
    selection = {
        "chosen": chosen,
        "kind": kind,
        "params": {k: v for k, v in params.items() if k != "early_stopping_rounds"},
        "folds": folds,
        "candidates": [
            {"name": n, "cv_roc_auc": float(np.mean(s)), "cv_roc_auc_sd": float(np.std(s, ddof=1))}
            for n, s in scores.items()
        ],
    }
    return model, selection


def _spec(name: str) -> tuple[str, dict[str, Any]]:
    """The kind and parameters that fit candidate ``name`` on its own."""
    if name in CANDIDATES:
        return CANDIDATES[name]
    trees, linear, weight = BLENDS[name]
    lgb_params = {k: v for k, v in CANDIDATES[trees][1].items() if k != "early_stopping_rounds"}
    return "blend", {**lgb_params, **CANDIDATES[linear][1], "lightgbm_weight": weight}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))))


def fit_named(
    name: str, X: pd.DataFrame, y: np.ndarray, *, seed: int | None = 0, n_jobs: int | None = None
) -> tuple[Any, dict[str, Any] | None]:
    """Fit the model called ``name`` (``auto``: `select_model`); the selection report or None."""
    if name == "auto":
        return select_model(X, y, seed=seed, n_jobs=n_jobs)
    return make_model(name, random_state=seed, n_jobs=n_jobs).fit(X, y), None
