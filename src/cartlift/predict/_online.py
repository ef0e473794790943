"""Learning as sessions finish, and knowing when the batch model has gone stale.

`OnlineLogisticModel` is a logistic regression fitted by stochastic gradient descent that takes
each finished session with ``partial_fit``; a constant learning rate keeps it following a store
whose behaviour drifts. `DriftMonitor` compares recent sessions with the training data: the
model's log loss (a one-sided test of whether it got worse), the calibration-in-the-large
(whether the abandonment rate moved away from the predictions), and each feature's
population stability index (PSI). Its `DriftReport` says whether to retrain and why.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import BaseEstimator, ClassifierMixin

from cartlift._params import Constraint, Interval, Options, validate_params
from cartlift._random import check_random_state
from cartlift.errors import DataError, NotFittedError
from cartlift.predict._calibration import sigmoid
from cartlift.predict._encode import LinearDesign, TableEncoder, as_frame
from cartlift.predict._models import binary_labels

__all__ = ["DriftMonitor", "DriftReport", "OnlineLogisticModel", "population_stability_index"]


class OnlineLogisticModel(ClassifierMixin, BaseEstimator):
    """Logistic regression updated with each finished session (SGD, ``partial_fit``).

    Parameters
    ----------
    alpha : float
        L2 penalty.
    learning_rate : {"constant", "optimal", "adaptive", "invscaling"}
        scikit-learn's step schedule. "constant" keeps adapting for ever, which is the point of
        an online model for a drifting store; "optimal" settles down like a batch fit.
    eta0 : float
        Step size of the constant and adaptive schedules.
    n_epochs : int
        Passes over the data in `fit` (``partial_fit`` does one).
    clip : float
        Standardised values are clipped to ``[-clip, clip]``: the scales come from the first
        batch, and one extreme later value (a session left open for hours) would otherwise
        make one gradient step that undoes everything learnt.
    max_categories : int
        Categories kept per text column.
    random_state : int, Generator or None
        Seeds the shuffling of `fit`.

    Notes
    -----
    The first batch given to `fit` or `partial_fit` fixes the encoding (categories, medians,
    scales), so start with a batch of past sessions rather than a single one; later unseen
    categories count as missing.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "alpha": [Interval(float, 0, None)],
        "learning_rate": [Options(("constant", "optimal", "adaptive", "invscaling"))],
        "eta0": [Interval(float, 0, None, closed="neither")],
        "n_epochs": [Interval(int, 1, None)],
        "clip": [Interval(float, 0, None, closed="neither")],
        "max_categories": [Interval(int, 2, None)],
        "random_state": [None, int, np.random.Generator],
    }

    def __init__(
        self,
        alpha: float = 1e-4,
        learning_rate: str = "constant",
        eta0: float = 0.01,
        n_epochs: int = 5,
        clip: float = 5.0,
        max_categories: int = 100,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.n_epochs = n_epochs
        self.clip = clip
        self.max_categories = max_categories
        self.random_state = random_state

    def _start(self, frame: pd.DataFrame) -> None:
        from sklearn.linear_model import SGDClassifier

        validate_params(self)
        self._rng = check_random_state(self.random_state)
        self.encoder_ = TableEncoder(max_categories=self.max_categories).fit(frame)
        self.design_ = LinearDesign().fit(self.encoder_.transform(frame), self.encoder_)
        self.sgd_ = SGDClassifier(
            loss="log_loss",
            alpha=self.alpha,
            learning_rate=self.learning_rate,
            eta0=self.eta0,
            random_state=int(self._rng.integers(2**31 - 1)),
        )
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = len(frame.columns)
        self.n_seen_ = 0

    def _design(self, X: Any) -> np.ndarray:
        design = self.design_.transform(self.encoder_.transform(as_frame(X, list(self.feature_names_in_))))
        return np.clip(design, -self.clip, self.clip)

    def fit(self, X: Any, y: Any) -> Self:
        """Start afresh: learn the encoding from ``X`` and make ``n_epochs`` shuffled passes."""
        frame = as_frame(X)
        y01, classes = binary_labels(y)
        self._start(frame)
        self.classes_ = np.asarray(classes, dtype=object)
        design = self._design(frame)
        for _ in range(self.n_epochs):
            order = self._rng.permutation(y01.size)
            self.sgd_.partial_fit(design[order], y01[order], classes=np.array([0.0, 1.0]))
        self.n_seen_ = int(y01.size)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> Self:
        """Learn from one more batch (a finished session's rows), one pass.

        Parameters
        ----------
        X : DataFrame or 2-D array
        y : array-like
            Outcomes of the rows; values must be among ``classes`` (or the classes of the first
            call).
        classes : array-like, optional
            The two label values, required at the first call when ``y`` shows only one.
        """
        frame = as_frame(X, getattr(self, "feature_names_in_", None))
        if not hasattr(self, "sgd_"):
            self._start(frame)
            labels = np.asarray(classes if classes is not None else pd.unique(np.asarray(y).ravel()))
            if labels.size != 2:
                raise DataError(
                    "The first partial_fit needs both classes: pass classes=[negative, positive]."
                )
            self.classes_ = np.asarray(sorted(labels.tolist()), dtype=object)
        y_arr = np.asarray(y).ravel()
        known = np.isin(y_arr, self.classes_)
        if not known.all():
            raise DataError(
                f"Labels {sorted(set(y_arr[~known].tolist()))} are not among {list(self.classes_)}."
            )
        y01 = (y_arr == self.classes_[1]).astype(float)
        self.sgd_.partial_fit(self._design(frame), y01, classes=np.array([0.0, 1.0]))
        self.n_seen_ += int(y01.size)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of the positive class."""
        if not hasattr(self, "sgd_"):
            raise NotFittedError("This OnlineLogisticModel has not seen data yet: call fit or partial_fit.")
        return np.asarray(self.sgd_.decision_function(self._design(X)), dtype=float)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, 2)."""
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """The more likely class of each row."""
        p = self.predict_proba(X)[:, 1]
        return np.where(p >= 0.5, self.classes_[1], self.classes_[0])


def population_stability_index(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """``PSI = sum_i (a_i - e_i) ln(a_i / e_i)`` of two histograms' shares (each bin floored at ``eps``).

    Rules of thumb (Siddiqi, 2006, "Credit risk scorecards"): below 0.1 stable, 0.1-0.25 a
    moderate shift, above 0.25 a major one.
    """
    e = np.maximum(np.asarray(expected, dtype=float) / max(np.sum(expected), 1), eps)
    a = np.maximum(np.asarray(actual, dtype=float) / max(np.sum(actual), 1), eps)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class DriftReport:
    """What `DriftMonitor.check` found.

    Attributes
    ----------
    retrain : bool
        True when the model got measurably worse, its probabilities drifted off the observed
        rate, or a feature's distribution shifted beyond the PSI threshold.
    reasons : list of str
        Each finding, in words.
    n_recent : int
        Rows in the recent window.
    loss_reference, loss_recent : float
        Mean log loss on the reference rows and on the recent window.
    loss_p_value : float
        One-sided p-value of "the recent loss is no higher than the reference loss".
    rate_gap : float
        Observed minus predicted positive rate in the window.
    rate_p_value : float
        Two-sided p-value of "predictions and outcomes agree on average".
    psi : dict
        PSI of each feature, largest first.
    """

    retrain: bool
    reasons: list[str]
    n_recent: int
    loss_reference: float
    loss_recent: float
    loss_p_value: float
    rate_gap: float
    rate_p_value: float
    psi: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "retrain": self.retrain,
            "reasons": list(self.reasons),
            "n_recent": self.n_recent,
            "loss_reference": self.loss_reference,
            "loss_recent": self.loss_recent,
            "loss_p_value": self.loss_p_value,
            "rate_gap": self.rate_gap,
            "rate_p_value": self.rate_p_value,
            "psi": dict(self.psi),
        }


def _row_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    out: np.ndarray = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return out


class DriftMonitor:
    """Watch recent finished sessions and say when to retrain.

    Parameters
    ----------
    window : int
        Recent rows kept (older ones fall out).
    min_rows : int
        Rows needed in the window before `check` judges anything.
    alpha : float
        Significance level of the loss and rate tests.
    psi_threshold : float
        A feature whose PSI exceeds this counts as shifted (0.25: a major shift).
    n_bins : int
        Quantile bins of numeric features for the PSI.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "window": [Interval(int, 10, None)],
        "min_rows": [Interval(int, 10, None)],
        "alpha": [Interval(float, 0, 1, closed="neither")],
        "psi_threshold": [Interval(float, 0, None, closed="neither")],
        "n_bins": [Interval(int, 2, 100)],
    }

    def __init__(
        self,
        window: int = 1000,
        min_rows: int = 200,
        alpha: float = 0.01,
        psi_threshold: float = 0.25,
        n_bins: int = 10,
    ) -> None:
        self.window = window
        self.min_rows = min_rows
        self.alpha = alpha
        self.psi_threshold = psi_threshold
        self.n_bins = n_bins

    def fit(self, X: pd.DataFrame, y: Any, p: Any) -> Self:
        """Take the reference: features ``X``, outcomes ``y`` (0/1) and the model's probabilities ``p``."""
        validate_params(self)
        frame = as_frame(X)
        y_arr = np.asarray(y, dtype=float).ravel()
        p_arr = np.asarray(p, dtype=float).ravel()
        if not (len(frame) == y_arr.size == p_arr.size) or y_arr.size < 2:
            raise DataError("X, y and p must have the same number of rows (at least 2).")
        loss = _row_loss(y_arr, p_arr)
        self.loss_mean_ = float(loss.mean())
        self.loss_var_ = float(loss.var(ddof=1))
        self.n_reference_ = int(y_arr.size)
        self.bins_: dict[str, tuple[str, Any, np.ndarray]] = {}
        for name in frame.columns:
            col = frame[name]
            if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
                values = col.to_numpy(dtype=float, na_value=np.nan)
                finite = values[~np.isnan(values)]
                edges = (
                    np.unique(np.quantile(finite, np.linspace(0, 1, self.n_bins + 1)[1:-1]))
                    if finite.size
                    else np.array([])
                )
                self.bins_[str(name)] = ("numeric", edges, self._hist_numeric(values, edges))
            else:
                cats = sorted(col.dropna().astype(str).unique().tolist())
                self.bins_[str(name)] = ("categorical", cats, self._hist_categorical(col, cats))
        self._recent: deque[tuple[dict[Any, Any], float, float]] = deque(maxlen=self.window)
        return self

    @staticmethod
    def _hist_numeric(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        ids = np.searchsorted(edges, values[~missing], side="right")
        return np.r_[np.bincount(ids, minlength=edges.size + 1), missing.sum()].astype(float)

    @staticmethod
    def _hist_categorical(col: pd.Series, cats: list[str]) -> np.ndarray:
        index = {c: i for i, c in enumerate(cats)}
        counts = np.zeros(len(cats) + 2)  # the categories, then unseen, then missing
        for v in col.astype(object):
            counts[len(cats) + 1 if pd.isna(v) else index.get(str(v), len(cats))] += 1
        return counts

    def update(self, X: pd.DataFrame, y: Any, p: Any) -> Self:
        """Add finished sessions: their features, outcomes (0/1) and the probabilities given to them."""
        if not hasattr(self, "bins_"):
            raise NotFittedError("This DriftMonitor has no reference yet: call fit() first.")
        frame = as_frame(X)
        y_arr = np.asarray(y, dtype=float).ravel()
        p_arr = np.asarray(p, dtype=float).ravel()
        for row, yi, pi in zip(frame.to_dict("records"), y_arr, p_arr, strict=True):
            self._recent.append((row, float(yi), float(pi)))
        return self

    def check(self) -> DriftReport:
        """Compare the recent window with the reference."""
        if not hasattr(self, "bins_"):
            raise NotFittedError("This DriftMonitor has no reference yet: call fit() first.")
        n = len(self._recent)
        nan = float("nan")
        if n < self.min_rows:
            return DriftReport(
                False,
                [f"only {n} recent rows; {self.min_rows} needed to judge"],
                n,
                self.loss_mean_,
                nan,
                nan,
                nan,
                nan,
            )
        frame = pd.DataFrame([r for r, _, _ in self._recent])
        y = np.array([v for _, v, _ in self._recent])
        p = np.array([v for _, _, v in self._recent])
        loss = _row_loss(y, p)
        se = math.sqrt(self.loss_var_ / self.n_reference_ + loss.var(ddof=1) / n)
        z = (loss.mean() - self.loss_mean_) / se if se > 0 else 0.0
        loss_p = float(norm.sf(z))
        gap = float(y.mean() - p.mean())
        # under calibration, y - p has mean 0 and variance sum p(1-p) / n^2
        rate_se = math.sqrt(float(np.sum(p * (1 - p)))) / n
        rate_p = float(2 * norm.sf(abs(gap) / rate_se)) if rate_se > 0 else 1.0
        psi: dict[str, float] = {}
        for name, (kind, spec, ref) in self.bins_.items():
            if name not in frame.columns:
                continue
            col = frame[name]
            if kind == "numeric":
                values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                hist = self._hist_numeric(values, spec)
            else:
                hist = self._hist_categorical(col, spec)
            psi[name] = population_stability_index(ref, hist)
        psi = dict(sorted(psi.items(), key=lambda kv: -kv[1]))
        reasons = []
        if loss_p < self.alpha:
            reasons.append(
                f"log loss rose from {self.loss_mean_:.4f} to {loss.mean():.4f} (p = {loss_p:.2g})"
            )
        if rate_p < self.alpha:
            reasons.append(f"observed rate {y.mean():.3f} vs predicted {p.mean():.3f} (p = {rate_p:.2g})")
        shifted = [f"{k} (PSI {v:.2f})" for k, v in psi.items() if v > self.psi_threshold]
        if shifted:
            reasons.append("feature distributions shifted: " + ", ".join(shifted))
        return DriftReport(
            bool(reasons), reasons, n, self.loss_mean_, float(loss.mean()), loss_p, gap, rate_p, psi
        )
