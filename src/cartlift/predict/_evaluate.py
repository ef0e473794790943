"""Held-out evaluation: the models by name, splits (random or by time) and the full report of a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartlift._params import Interval, Options, validate_params
from cartlift._random import check_random_state
from cartlift.errors import DataError
from cartlift.predict._blend import BlendModel
from cartlift.predict._families import ForestModel, MLPModel, SVMModel, TreeModel
from cartlift.predict._metrics import binary_metrics, calibration_table, lift_table
from cartlift.predict._models import LightGBMModel, LogisticModel, _BinaryModel

__all__ = ["FAMILIES", "MODELS", "SAVED_KINDS", "evaluate_model", "load_model", "make_model", "split_rows"]

_CLASSES: dict[str, type[_BinaryModel]] = {
    "lightgbm": LightGBMModel,
    "logistic": LogisticModel,
    "blend": BlendModel,
    "tree": TreeModel,
    "forest": ForestModel,
    "svm": SVMModel,
    "mlp": MLPModel,
}
FAMILIES = ("lightgbm", "logistic", "tree", "forest", "svm", "mlp")
"""The model families the leaderboard compares (``--models``)."""
MODELS = ("auto", *_CLASSES)
"""Model names the CLI and pipeline accept; ``auto`` is chosen by cross-validation (`select_model`)."""
SAVED_KINDS = ("lightgbm", "logistic", "blend")
"""Kinds that save without pickle and score live (the others are for comparison)."""


def make_model(name: str, *, random_state: int | None = 0, n_jobs: int | None = None, **params: Any) -> Any:
    """A model by name, with cartlift's defaults (``params`` override them).

    ``n_jobs`` reaches the models that use threads (LightGBM, the blend, the forest).
    """
    cls = _CLASSES.get(name)
    if cls is None:
        raise DataError(f"Unknown model {name!r}: use one of {', '.join(MODELS)}.")
    if "n_jobs" in cls().get_params():
        params = {"n_jobs": n_jobs, **params}
    return cls(random_state=random_state, **params)


def load_model(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """A model written by ``save``, and the metadata saved with it."""
    path = Path(folder)
    file = path / "model.json"
    if not file.is_file():
        raise DataError(
            f"No model in {str(path)!r} (no model.json). Train one with `cartlift abandonment train`."
        )
    data = json.loads(file.read_text())
    cls = _CLASSES.get(data.get("kind", "")) if data.get("kind") in SAVED_KINDS else None
    if cls is None:
        raise DataError(f"{str(file)!r} holds an unknown model kind {data.get('kind')!r}.")
    model = cls(**data["params"])
    model._restore(data, path)
    return model, dict(data.get("metadata", {}))


class _Split:
    _parameter_constraints: dict[str, list[Any]] = {  # noqa: RUF012 (read-only table)
        "split": [Options(("random", "time"))],
        "test_size": [Interval(float, 0, 1, closed="neither")],
    }

    def __init__(self, split: str, test_size: float) -> None:
        self.split = split
        self.test_size = test_size


def split_rows(
    n: int,
    *,
    split: str = "random",
    test_size: float = 0.2,
    seed: int | None = 0,
    time: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)``.

    ``random``: a seeded permutation, the last ``test_size`` share held out. ``time``: rows at or
    after the ``1 - test_size`` quantile of ``time`` are held out, so the model is tested on a
    later period than it learnt from (ties at the cut all go to the test part).
    """
    validate_params(_Split(split, test_size))
    if n < 2:
        raise DataError(f"At least 2 rows are needed to split; got {n}.")
    if split == "random":
        order = check_random_state(seed).permutation(n)
        k = max(1, min(n - 1, round(test_size * n)))
        return np.sort(order[: n - k]), np.sort(order[n - k :])
    if time is None:
        raise DataError("A time split needs the time of each row: pass --time-column (or time=...).")
    t = pd.to_datetime(pd.Series(time).reset_index(drop=True))
    if t.isna().any():
        raise DataError(f"The time column has {int(t.isna().sum())} missing or unparseable value(s).")
    order = np.argsort(t.to_numpy(), kind="mergesort")
    cut = t.iloc[order[min(n - 1, int(np.floor((1 - test_size) * n)))]]
    test = (t >= cut).to_numpy()
    if test.all() or not test.any():
        raise DataError("The time split left one side empty: the rows share too few distinct times.")
    return np.flatnonzero(~test), np.flatnonzero(test)


def evaluate_model(
    model: Any, X_test: pd.DataFrame, y_test: np.ndarray, *, n_bins: int = 10, top: int = 15
) -> dict[str, Any]:
    """Metrics, calibration curve, lift/gains by decile and SHAP importances on held-out rows.

    ``y_test`` is 0/1 with 1 the model's positive class.
    """
    p = model.predict_proba(X_test)[:, 1]
    result: dict[str, Any] = binary_metrics(y_test, p, n_bins)
    result["calibration"] = calibration_table(y_test, p, n_bins)
    result["lift"] = lift_table(y_test, p, 10)
    result["feature_importance"] = []
    if getattr(model, "kind", None) in SAVED_KINDS:  # the others have no exact SHAP values
        importance = model.feature_importance(X_test)
        result["feature_importance"] = [
            {"feature": str(k), "mean_abs_shap": float(v)} for k, v in importance.head(top).items()
        ]
    return result
