"""A leaderboard of model families on one split: metrics with intervals, a paired test, timings.

Every family is fitted on the same training rows and scored on the same held-out rows. The
intervals are percentile bootstrap intervals over the held-out rows (Efron & Tibshirani 1993,
``scipy.stats.bootstrap``); the two best models by ROC-AUC are compared on the *same*
resamples (a paired bootstrap of the AUC difference), so the noise they share cancels. With
``tune`` each family first gets a seeded successive-halving random search
(``sklearn.model_selection.HalvingRandomSearchCV``, Jamieson & Talwalkar 2016) by
cross-validated ROC-AUC on the training rows only; its budget is reported with the results.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from cartlift.errors import DataError
from cartlift.predict._evaluate import MODELS, make_model
from cartlift.predict._metrics import binary_metrics, brier_score, log_loss, pr_auc, roc_auc
from cartlift.predict._select import select_model

__all__ = ["SEARCH_SPACES", "leaderboard", "parse_models"]

_INTERVAL_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": roc_auc,
    "pr_auc": pr_auc,
    "log_loss": log_loss,
    "brier": brier_score,
}
_METRIC_KEYS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")

SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "lightgbm": {
        "num_leaves": [7, 15, 31],
        "learning_rate": [0.02, 0.05, 0.1],
        "min_child_samples": [10, 20, 50],
        "colsample_bytree": [0.6, 0.8, 1.0],
    },
    "logistic": {"C": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]},
    "blend": {"lightgbm_weight": [0.5, 0.6, 0.7, 0.8, 0.9], "num_leaves": [7, 15, 31]},
    "tree": {"max_depth": [3, 4, 5, 6, 8, 10], "min_samples_leaf": [5, 10, 20, 50, 100]},
    "forest": {"min_samples_leaf": [1, 2, 3, 5, 10], "max_features": [0.2, 0.33, 0.5, 0.7]},
    "svm": {"C": [0.1, 0.3, 1.0, 3.0, 10.0], "gamma": ["scale", 0.003, 0.01, 0.03]},
    "mlp": {"alpha": [1e-4, 1e-3, 1e-2, 1e-1], "hidden_layer_sizes": [(32,), (64,), (64, 32)]},
}
"""What ``--tune`` searches per family."""
TUNE_CANDIDATES = 12
"""Random candidates per family; successive halving (factor 3) cuts them on 3-fold CV."""
MIN_TUNE_ROWS = 300
"""Fewest training rows the first halving round sees."""


def parse_models(text: str) -> list[str]:
    """``"lightgbm,svm"`` as a list of known model names, each once."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise DataError(
            f"Unknown model(s) in --models: {', '.join(unknown) or '(none given)'}; use any of {', '.join(MODELS)}."
        )
    return list(dict.fromkeys(names))


def _tuned(
    name: str, X: pd.DataFrame, y: np.ndarray, seed: int | None, n_jobs: int | None
) -> tuple[Any, dict[str, Any]]:
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401 (enables the class)
    from sklearn.model_selection import HalvingRandomSearchCV

    # the first round's subsample must still hold both classes in every fold: at least
    # MIN_TUNE_ROWS rows (one round on all of them when the table is smaller than that)
    first = min(len(X), max(len(X) // 9, MIN_TUNE_ROWS))
    search = HalvingRandomSearchCV(
        make_model(name, random_state=seed, n_jobs=n_jobs),
        SEARCH_SPACES[name],
        n_candidates=TUNE_CANDIDATES,
        factor=3,
        min_resources=first,
        cv=3,
        scoring="roc_auc",
        random_state=seed,
        refit=False,
        error_score=np.nan,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    if not np.isfinite(search.best_score_):
        raise DataError(f"Tuning {name} failed on every candidate: the training part is too small to tune.")
    best = dict(search.best_params_)
    tuning = {
        "method": "successive halving random search, 3-fold CV ROC-AUC on the training rows",
        "candidates": TUNE_CANDIDATES,
        "fits": int(sum(search.n_candidates_) * 3),
        "best_params": {k: list(v) if isinstance(v, tuple) else v for k, v in best.items()},
        "cv_roc_auc": float(search.best_score_),
    }
    return make_model(name, random_state=seed, n_jobs=n_jobs, **best), tuning


def _intervals(y: np.ndarray, p: np.ndarray, n_boot: int, seed: int | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for key, fn in _INTERVAL_METRICS.items():
        res = bootstrap(
            (y, p),
            fn,
            paired=True,
            vectorized=False,
            n_resamples=n_boot,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
        out[key] = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
    return out


def _paired(y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int, seed: int | None) -> dict[str, Any]:
    def diff(y_: np.ndarray, a_: np.ndarray, b_: np.ndarray) -> float:
        return roc_auc(y_, a_) - roc_auc(y_, b_)

    res = bootstrap(
        (y, a, b),
        diff,
        paired=True,
        vectorized=False,
        n_resamples=n_boot,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    d = res.bootstrap_distribution[np.isfinite(res.bootstrap_distribution)]
    # two-sided percentile-bootstrap p-value: how often the resampled difference crosses zero
    p_value = min(1.0, 2 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))) + 1.0 / (d.size + 1))
    return {
        "roc_auc_difference": diff(y, a, b),
        "interval": [float(res.confidence_interval.low), float(res.confidence_interval.high)],
        "p_value": p_value,
        "method": f"paired bootstrap of the held-out rows, {n_boot} resamples",
    }


def leaderboard(
    X: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    *,
    models: Sequence[str],
    seed: int | None = 0,
    n_jobs: int | None = None,
    tune: bool = False,
    n_boot: int = 1000,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Fit each of ``models`` on ``train`` rows, score the ``test`` rows, rank by ROC-AUC.

    Returns
    -------
    dict
        ``rows``: per model ``model``, the metrics, ``intervals`` (95 % percentile bootstrap),
        ``fit_seconds``, ``predict_seconds`` and (with ``tune``) ``tuning``, best ROC-AUC first;
        ``paired_test``: the two best compared on the same resamples; ``n_boot``.
    """
    if confidence != 0.95:
        raise DataError("Only 95 % intervals are computed.")
    X_train, y_train, X_test, y_test = X.iloc[train], y[train], X.iloc[test], y[test]
    rows: list[dict[str, Any]] = []
    probs: dict[str, np.ndarray] = {}
    for name in models:
        extra: dict[str, Any] = {}
        start = time.perf_counter()
        if name == "auto":
            fitted, extra["selection"] = select_model(X_train, y_train, seed=seed, n_jobs=n_jobs)
        else:
            if tune and name in SEARCH_SPACES:
                model, extra["tuning"] = _tuned(name, X_train, y_train, seed, n_jobs)
            else:
                model = make_model(name, random_state=seed, n_jobs=n_jobs)
            fitted = model.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        p = fitted.predict_proba(X_test)[:, 1]
        predict_seconds = time.perf_counter() - start
        probs[name] = p
        metrics = binary_metrics(y_test, p)
        rows.append(
            {
                "model": name,
                **{k: metrics[k] for k in _METRIC_KEYS},
                "intervals": _intervals(y_test, p, n_boot, seed),
                "fit_seconds": fit_seconds,
                "predict_seconds": predict_seconds,
                **extra,
            }
        )
    rows.sort(key=lambda r: -r["roc_auc"])
    result: dict[str, Any] = {"rows": rows, "n_boot": n_boot, "confidence": confidence, "tuned": tune}
    if len(rows) >= 2:
        best, second = rows[0]["model"], rows[1]["model"]
        result["paired_test"] = {
            "best": best,
            "second": second,
            **_paired(y_test, probs[best], probs[second], n_boot, seed),
        }
    return result
