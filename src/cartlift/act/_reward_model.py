"""The reward model ``q(x, a, k)`` of the direct and doubly robust estimators, with cross-fitting.

One model per position ``k``, fitted on the rounds logged at that position, on the features
``[x, e(a)]`` (the context and the action's own features ``e(a)``, one-hot by default). With
``n_folds > 1`` every round's ``q`` comes from a model that did not see that round
(cross-fitting, Narita et al. 2021), as zr-obp's ``RegressionModel.fit_predict`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold

from cartlift.errors import DataError, InvalidParameterError

__all__ = ["fit_reward_model"]


def _predict(model: Any, X: np.ndarray, constant: float | None) -> np.ndarray:
    if constant is not None:
        return np.full(X.shape[0], constant)
    if is_classifier(model):
        return np.asarray(model.predict_proba(X)[:, 1])
    return np.asarray(model.predict(X), dtype=float)


def fit_reward_model(
    context: Any,
    action: Any,
    reward: Any,
    *,
    n_actions: int,
    position: Any = None,
    len_list: int = 1,
    action_context: Any = None,
    base_model: Any = None,
    n_folds: int = 3,
    random_state: int | None = None,
) -> np.ndarray:
    """Predicted reward of every action for every round, shape (n, n_actions, len_list).

    Parameters
    ----------
    context : array-like, shape (n, d)
    action : array-like of int, shape (n,)
    reward : array-like, shape (n,)
    n_actions, len_list : int
    position : array-like of int, shape (n,), optional
    action_context : array-like, shape (n_actions, d_a), optional
        Features of each action (default: one-hot).
    base_model : scikit-learn estimator, optional
        Default: logistic regression (C = 100) for binary rewards, ridge regression otherwise.
    n_folds : int
        Cross-fitting folds (1 = fit and predict on all rounds).
    random_state : int, optional
        Seeds the folds.
    """
    X = np.asarray(context, dtype=float)
    a = np.asarray(action).astype(np.int64)
    r = np.asarray(reward, dtype=float)
    n = r.shape[0]
    if X.ndim != 2 or X.shape[0] != n or a.shape != (n,):
        raise DataError(f"context must be (n, d) and action (n,) with n = len(reward) = {n}.")
    if not (isinstance(n_folds, int) and n_folds >= 1):
        raise InvalidParameterError(f"n_folds must be an int >= 1. Got {n_folds!r} instead.")
    k = np.zeros(n, dtype=np.int64) if position is None else np.asarray(position).astype(np.int64)
    emb = np.eye(n_actions) if action_context is None else np.asarray(action_context, dtype=float)
    if emb.shape[0] != n_actions:
        raise DataError(f"action_context must have one row per action ({n_actions}). Got {emb.shape[0]}.")
    binary = bool(np.isin(r, (0.0, 1.0)).all())
    model = (
        base_model
        if base_model is not None
        else (LogisticRegression(C=100.0, max_iter=10_000) if binary else Ridge(alpha=1.0))
    )
    out = np.zeros((n, n_actions, len_list))
    folds = (
        [(np.arange(n), np.arange(n))]
        if n_folds == 1
        else list(KFold(n_folds, shuffle=True, random_state=random_state).split(X))
    )
    for train, test in folds:
        for pos in range(len_list):
            rows = train[k[train] == pos]
            if rows.size == 0:
                raise DataError(f"No logged rounds at position {pos} to fit the reward model on.")
            fitted = clone(model)
            labels = r[rows]
            constant = float(labels[0]) if is_classifier(fitted) and np.unique(labels).size < 2 else None
            if constant is None:
                fitted.fit(np.column_stack([X[rows], emb[a[rows]]]), labels)
            for act in range(n_actions):
                feats = np.column_stack([X[test], np.repeat(emb[act][None, :], test.size, axis=0)])
                out[test, act, pos] = _predict(fitted, feats, constant)
    return out
