"""Metrics of a probability forecast for a binary outcome, in NumPy.

Each one matches scikit-learn's function of the same meaning (``tests/predict/test_metrics.py``
checks them against it); they live here so that evaluation needs one sort of the scores and
so that ECE, the calibration curve and the lift table share one binning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from cartlift.errors import DataError

__all__ = [
    "binary_metrics",
    "brier_score",
    "calibration_table",
    "expected_calibration_error",
    "lift_table",
    "log_loss",
    "pr_auc",
    "roc_auc",
]

ArrayLike = npt.ArrayLike


def _check(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_prob, dtype=float).ravel()
    if y.shape != p.shape:
        raise DataError(f"y_true and y_prob differ in length: {y.size} and {p.size}.")
    if y.size == 0:
        raise DataError("No rows to evaluate: the held-out part is empty. Use a larger test size.")
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError("y_true must hold only 0 and 1.")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise DataError("y_prob must hold probabilities in [0, 1] (no NaN).")
    return y, p


def roc_auc(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Area under the ROC curve, by the Mann-Whitney rank sum (ties count one half).

    ``AUC = (R+ - n+ (n+ + 1) / 2) / (n+ n-)`` where ``R+`` is the sum of the positives' ranks
    among all scores (average ranks for ties). NaN when only one class is present.
    """
    y, p = _check(y_true, y_prob)
    n_pos = float(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Average precision: ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds.

    The step-wise area under the precision-recall curve (no interpolation), as
    ``sklearn.metrics.average_precision_score``. NaN without positives.
    """
    y, p = _check(y_true, y_prob)
    n_pos = y.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    # one threshold per distinct score: the last row of each run of equal scores
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), y.size - 1]
    tp = np.cumsum(y_sorted)[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def log_loss(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Mean negative log-likelihood, probabilities clipped to ``[eps, 1 - eps]`` (float64 eps)."""
    y, p = _check(y_true, y_prob)
    eps = np.finfo(np.float64).eps
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def brier_score(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Mean squared difference between the probability and the outcome."""
    y, p = _check(y_true, y_prob)
    return float(np.mean((p - y) ** 2))


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    # the binning of sklearn.calibration.calibration_curve(strategy="uniform")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], p)


def calibration_table(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10) -> list[dict[str, Any]]:
    """The reliability curve: for each non-empty probability bin, mean prediction and outcome rate.

    Bins are ``n_bins`` equal-width intervals of [0, 1], as
    ``sklearn.calibration.calibration_curve(strategy="uniform")``.
    """
    y, p = _check(y_true, y_prob)
    ids = _bins(p, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    sum_p = np.bincount(ids, weights=p, minlength=n_bins)
    sum_y = np.bincount(ids, weights=y, minlength=n_bins)
    return [
        {
            "bin_low": b / n_bins,
            "bin_high": (b + 1) / n_bins,
            "n": int(counts[b]),
            "mean_predicted": float(sum_p[b] / counts[b]),
            "observed_rate": float(sum_y[b] / counts[b]),
        }
        for b in range(n_bins)
        if counts[b] > 0
    ]


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10) -> float:
    """``ECE = sum_b (n_b / n) |mean(y_b) - mean(p_b)|`` over the bins of `calibration_table`.

    Naeini, Cooper & Hauskrecht (2015), "Obtaining well calibrated probabilities using
    Bayesian binning", AAAI.
    """
    rows = calibration_table(y_true, y_prob, n_bins)
    n = sum(r["n"] for r in rows)
    return float(sum(r["n"] / n * abs(r["observed_rate"] - r["mean_predicted"]) for r in rows))


def lift_table(y_true: ArrayLike, y_prob: ArrayLike, n_groups: int = 10) -> list[dict[str, Any]]:
    """Lift and cumulative gains by group of equal size, highest scores first (deciles by default).

    Rows are sorted by descending score (ties kept in input order) and cut into ``n_groups``
    groups whose sizes differ by at most one. For group ``g``: ``rate`` is its share of
    positives, ``lift = rate / overall rate``, ``cumulative_gain`` the share of all positives in
    groups 1..g and ``cumulative_lift`` the lift of groups 1..g together.
    """
    y, p = _check(y_true, y_prob)
    order = np.argsort(-p, kind="mergesort")
    groups = np.array_split(y[order], min(n_groups, y.size))
    base = y.mean()
    total = y.sum()
    rows = []
    seen_n = seen_pos = 0.0
    for g, part in enumerate(groups, start=1):
        seen_n += part.size
        seen_pos += part.sum()
        rows.append(
            {
                "group": g,
                "n": int(part.size),
                "positives": int(part.sum()),
                "rate": float(part.mean()),
                "lift": float(part.mean() / base) if base > 0 else float("nan"),
                "cumulative_gain": float(seen_pos / total) if total > 0 else float("nan"),
                "cumulative_lift": float(seen_pos / seen_n / base) if base > 0 else float("nan"),
            }
        )
    return rows


def binary_metrics(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10) -> dict[str, float]:
    """ROC-AUC, PR-AUC, log loss, Brier score, ECE, and the positive rate and mean prediction."""
    y, p = _check(y_true, y_prob)
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "log_loss": log_loss(y, p),
        "brier": brier_score(y, p),
        "ece": expected_calibration_error(y, p, n_bins),
        "positive_rate": float(y.mean()),
        "mean_prediction": float(p.mean()),
        "n": int(y.size),
    }
