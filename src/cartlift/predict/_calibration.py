"""Probability calibration of a score: isotonic regression or Platt's sigmoid, saved as JSON.

Both map a raw score (log-odds) to a probability. They are fitted on rows the model did not
train on, and predict without scikit-learn objects, so the live path stays a few NumPy calls.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

from cartlift.errors import DataError

__all__ = ["Calibrator", "IsotonicCalibrator", "SigmoidCalibrator", "calibrator_from_dict", "sigmoid"]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` without overflow warnings."""
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -np.asarray(z, dtype=float)))
    return out


class IsotonicCalibrator:
    """A non-decreasing step-linear map from score to probability (Zadrozny & Elkan, 2002).

    The fit is ``sklearn.isotonic.IsotonicRegression``; prediction interpolates linearly between
    its thresholds and clips outside them, as scikit-learn does. Probabilities are kept within
    ``[1 / (2 (n + 1)), 1 - 1 / (2 (n + 1))]`` for ``n`` calibration rows, because a finite sample
    never shows that a cart is certain, and a 0 or 1 would make the log loss infinite.
    """

    kind = "isotonic"

    def fit(self, scores: np.ndarray, y: np.ndarray) -> Self:
        """Fit on held-out ``scores`` and 0/1 outcomes ``y``."""
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
        self.x_ = np.asarray(iso.X_thresholds_, dtype=float)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=float)
        self.floor_ = 0.5 / (len(y) + 1)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of the scores."""
        p = np.interp(scores, self.x_, self.y_)
        return np.clip(p, self.floor_, 1.0 - self.floor_)

    def predict_one(self, score: float) -> float:
        """One score (the live path)."""
        p = float(np.interp(score, self.x_, self.y_))
        return min(max(p, self.floor_), 1.0 - self.floor_)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"kind": self.kind, "x": self.x_.tolist(), "y": self.y_.tolist(), "floor": self.floor_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IsotonicCalibrator:
        """The calibrator `to_dict` described."""
        cal = cls()
        cal.x_ = np.asarray(data["x"], dtype=float)
        cal.y_ = np.asarray(data["y"], dtype=float)
        cal.floor_ = float(data["floor"])
        return cal


class SigmoidCalibrator:
    """Platt scaling: ``p = 1 / (1 + exp(-(a s + b)))`` fitted by maximum likelihood.

    The targets are Platt's smoothed labels ``(n+ + 1) / (n+ + 2)`` and ``1 / (n- + 2)``
    (Platt, 1999, "Probabilistic outputs for support vector machines"), which keep the fit
    finite on separable data.
    """

    kind = "sigmoid"

    def fit(self, scores: np.ndarray, y: np.ndarray) -> Self:
        """Fit ``a`` and ``b`` on held-out ``scores`` and 0/1 outcomes ``y``."""
        s = np.asarray(scores, dtype=float)
        y = np.asarray(y, dtype=float)
        n_pos = y.sum()
        n_neg = y.size - n_pos
        t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = w[0] * s + w[1]
            # log(1 + e^z) - t z is the negative log-likelihood of target t
            value = float(np.sum(np.logaddexp(0.0, z) - t * z))
            g = sigmoid(z) - t
            return value, np.array([np.dot(g, s), g.sum()])

        res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        if not np.all(np.isfinite(res.x)):
            raise DataError("Platt scaling did not converge; try calibration='isotonic'.")
        self.a_, self.b_ = float(res.x[0]), float(res.x[1])
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of the scores."""
        return sigmoid(self.a_ * np.asarray(scores, dtype=float) + self.b_)

    def predict_one(self, score: float) -> float:
        """One score (the live path)."""
        z = self.a_ * score + self.b_
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"kind": self.kind, "a": self.a_, "b": self.b_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SigmoidCalibrator:
        """The calibrator `to_dict` described."""
        cal = cls()
        cal.a_, cal.b_ = float(data["a"]), float(data["b"])
        return cal


Calibrator = IsotonicCalibrator | SigmoidCalibrator


def calibrator_from_dict(data: dict[str, Any] | None) -> Calibrator | None:
    """The calibrator a model's JSON describes (None: the model is used uncalibrated)."""
    if data is None:
        return None
    return (
        IsotonicCalibrator.from_dict(data)
        if data["kind"] == "isotonic"
        else SigmoidCalibrator.from_dict(data)
    )
