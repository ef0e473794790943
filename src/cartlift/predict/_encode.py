"""Turning any feature table into numbers without the user encoding it.

`TableEncoder` decides per column: numbers stay numbers, booleans become 0/1, text and
categories become integer codes (LightGBM splits on them natively), identifiers and timestamps
are left out with a warning saying why. `LinearDesign` expands the codes for a linear model:
median imputation with a missing-value indicator, standardisation, one-hot categories.
Both are plain data that saves to JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from cartlift.errors import CartliftWarning, DataError, NotFittedError

__all__ = ["OTHER", "LinearDesign", "TableEncoder", "as_frame"]

OTHER = "__other__"
"""The category that rare values share (and unseen values map to)."""


def as_frame(X: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``X`` as a DataFrame: a DataFrame as is, a 2-D array with ``columns`` (or ``x0, x1, ...``)."""
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if array.ndim != 2:
        raise DataError(f"X must be a table (2-D). Got an array of shape {array.shape}.")
    names = list(columns) if columns is not None else [f"x{i}" for i in range(array.shape[1])]
    if len(names) != array.shape[1]:
        raise DataError(f"X has {array.shape[1]} columns, the model expects {len(names)}.")
    return pd.DataFrame(array, columns=names)


def _is_bool_column(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s.dtype):
        return True
    values = s.dropna()
    return bool(len(values)) and s.dtype == object and all(isinstance(v, bool | np.bool_) for v in values)


class TableEncoder:
    """Learn how to turn each column of a table into one float column.

    Parameters
    ----------
    max_categories : int
        Categories kept per text column, most frequent first; the rest share `OTHER`.
    id_share : float
        A text column whose distinct values exceed this share of the rows (and 50) is taken for
        an identifier and left out: a model cannot generalise from ids.

    Attributes
    ----------
    columns_ : list of str
        The columns used, in order.
    kinds_ : dict
        ``"numeric"``, ``"bool"`` or ``"categorical"`` per column used.
    categories_ : dict
        The categories of each categorical column; code ``i`` is ``categories_[col][i]``.
    dropped_ : dict
        Columns left out and why.
    """

    def __init__(self, max_categories: int = 100, id_share: float = 0.5) -> None:
        self.max_categories = max_categories
        self.id_share = id_share

    def fit(self, X: pd.DataFrame) -> Self:
        """Decide the kind of each column of ``X`` and learn the categories."""
        self.columns_: list[str] = []
        self.kinds_: dict[str, str] = {}
        self.categories_: dict[str, list[str]] = {}
        self.dropped_: dict[str, str] = {}
        n = len(X)
        for name in X.columns:
            col = X[name]
            key = str(name)
            if _is_bool_column(col):
                kind = "bool"
            elif pd.api.types.is_numeric_dtype(col.dtype):
                kind = "numeric"
            elif pd.api.types.is_datetime64_any_dtype(col.dtype) or isinstance(
                col.dtype, pd.PeriodDtype | pd.IntervalDtype
            ):
                self.dropped_[key] = "a date or time (use it to split by time, not as a feature)"
                continue
            else:
                text = col.dropna().astype(str)
                counts = text.value_counts(sort=False)
                if len(counts) > max(50, self.id_share * n):
                    self.dropped_[key] = f"looks like an identifier ({len(counts):,} distinct values)"
                    continue
                ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                kept = [str(v) for v, _ in ranked[: self.max_categories]]
                if len(ranked) > self.max_categories:
                    kept = [*kept[: self.max_categories - 1], OTHER]
                self.categories_[key] = kept
                kind = "categorical"
            self.columns_.append(key)
            self.kinds_[key] = kind
        if not self.columns_:
            raise DataError(
                "No usable feature column: " + "; ".join(f"{k}: {v}" for k, v in self.dropped_.items())
            )
        if self.dropped_:
            warnings.warn(
                "Columns left out of the model: "
                + "; ".join(f"{k!r} {v}" for k, v in self.dropped_.items())
                + ". Drop them yourself to silence this.",
                CartliftWarning,
                stacklevel=3,
            )
        self._index()
        return self

    def _index(self) -> None:
        self._codes = {c: {v: float(i) for i, v in enumerate(cats)} for c, cats in self.categories_.items()}

    @property
    def categorical_indices(self) -> list[int]:
        """Positions of the categorical columns in the encoded matrix."""
        self._check()
        return [i for i, c in enumerate(self.columns_) if self.kinds_[c] == "categorical"]

    def _check(self) -> None:
        if not hasattr(self, "columns_"):
            raise NotFittedError("This TableEncoder is not fitted yet: call fit() first.")

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """The float matrix (n_rows, n_columns); missing and unknown values are NaN."""
        self._check()
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise DataError(f"The table lacks the column(s) the model was trained on: {', '.join(missing)}.")
        out = np.empty((len(X), len(self.columns_)), dtype=np.float64)
        for j, name in enumerate(self.columns_):
            col = X[name]
            kind = self.kinds_[name]
            if kind == "categorical":
                codes = self._codes[name]
                other = codes.get(OTHER, math.nan)
                out[:, j] = [
                    math.nan if pd.isna(v) else codes.get(str(v), other)
                    for v in col.astype(object).to_numpy()
                ]
            elif kind == "bool":
                out[:, j] = pd.to_numeric(col.astype(object).map(_bool_value), errors="coerce").to_numpy(
                    dtype=float, na_value=np.nan
                )
            else:
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return out

    def encode_row(self, values: Sequence[Any]) -> np.ndarray:
        """One row given as values in `columns_` order (the live path: no pandas)."""
        row = np.empty((1, len(self.columns_)), dtype=np.float64)
        for j, (name, v) in enumerate(zip(self.columns_, values, strict=True)):
            if v is None:
                row[0, j] = math.nan
            elif self.kinds_[name] == "categorical":
                codes = self._codes[name]
                row[0, j] = codes.get(str(v), codes.get(OTHER, math.nan))
            else:
                row[0, j] = float(v)
        return row

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        self._check()
        return {
            "max_categories": self.max_categories,
            "id_share": self.id_share,
            "columns": self.columns_,
            "kinds": self.kinds_,
            "categories": self.categories_,
            "dropped": self.dropped_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableEncoder:
        """The encoder `to_dict` described."""
        enc = cls(data["max_categories"], data["id_share"])
        enc.columns_ = list(data["columns"])
        enc.kinds_ = dict(data["kinds"])
        enc.categories_ = {k: list(v) for k, v in data["categories"].items()}
        enc.dropped_ = dict(data["dropped"])
        enc._index()
        return enc


def _bool_value(v: Any) -> float:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return math.nan
    return 1.0 if bool(v) else 0.0


class LinearDesign:
    """The design matrix of a linear model from the encoder's codes.

    Numeric and boolean columns: missing values take the training median and, when the column
    had any, a 0/1 missing indicator is added; then each is standardised. Categorical columns:
    one 0/1 column per category (missing: all zero).
    """

    def fit(self, codes: np.ndarray, encoder: TableEncoder) -> Self:
        """Learn medians, means and scales from the training codes."""
        self.kinds_ = [encoder.kinds_[c] for c in encoder.columns_]
        self.sizes_ = [len(encoder.categories_.get(c, [])) for c in encoder.columns_]
        self.medians_: list[float] = []
        self.indicator_: list[bool] = []
        for j, kind in enumerate(self.kinds_):
            col = codes[:, j]
            finite = col[~np.isnan(col)]
            self.medians_.append(float(np.median(finite)) if kind != "categorical" and finite.size else 0.0)
            self.indicator_.append(kind != "categorical" and finite.size < col.size)
        raw = self._expand(codes)
        self.mean_ = raw.mean(axis=0)
        scale = raw.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    def _expand(self, codes: np.ndarray) -> np.ndarray:
        parts: list[np.ndarray] = []
        for j, kind in enumerate(self.kinds_):
            col = codes[:, j]
            if kind == "categorical":
                onehot = np.zeros((col.size, self.sizes_[j]))
                ok = ~np.isnan(col)
                onehot[np.flatnonzero(ok), col[ok].astype(int)] = 1.0
                parts.append(onehot)
            else:
                missing = np.isnan(col)
                parts.append(np.where(missing, self.medians_[j], col)[:, None])
                if self.indicator_[j]:
                    parts.append(missing.astype(float)[:, None])
        return np.hstack(parts) if parts else np.empty((codes.shape[0], 0))

    def owners(self) -> np.ndarray:
        """For each design column, the index of the encoded column it comes from."""
        owner: list[int] = []
        for j, kind in enumerate(self.kinds_):
            width = self.sizes_[j] if kind == "categorical" else 1 + int(self.indicator_[j])
            owner.extend([j] * width)
        return np.asarray(owner, dtype=int)

    def transform(self, codes: np.ndarray) -> np.ndarray:
        """The standardised design matrix."""
        return (self._expand(codes) - self.mean_) / self.scale_

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "kinds": self.kinds_,
            "sizes": self.sizes_,
            "medians": self.medians_,
            "indicator": self.indicator_,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearDesign:
        """The design `to_dict` described."""
        d = cls()
        d.kinds_ = list(data["kinds"])
        d.sizes_ = list(data["sizes"])
        d.medians_ = list(data["medians"])
        d.indicator_ = list(data["indicator"])
        d.mean_ = np.asarray(data["mean"], dtype=float)
        d.scale_ = np.asarray(data["scale"], dtype=float)
        return d
