"""Live scoring: a session's state in, the probability that its cart is abandoned out.

The hot path skips pandas and scikit-learn: the state's values are encoded into one preallocated
row and given to LightGBM's ``Booster.predict`` with a single thread (a pool of threads costs far
more than one row's trees), then calibrated with a NumPy interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cartlift.errors import DataError
from cartlift.predict._context import FeatureContext
from cartlift.predict._encode import OTHER
from cartlift.predict._live import SessionState
from cartlift.predict._models import LightGBMModel, LogisticModel
from cartlift.predict._spec import FEATURE_NAMES

__all__ = ["LiveScorer"]


class LiveScorer:
    """Score open carts from their live `SessionState`.

    Parameters
    ----------
    model : LightGBMModel or LogisticModel
        A model trained on the cart features (``cartlift abandonment train`` on a store).
    context : FeatureContext, optional
        Where new sessions look up catalog, product and customer history.

    Examples
    --------
    >>> scorer = LiveScorer(model, FeatureContext.from_store(store))  # doctest: +SKIP
    >>> state = scorer.session()                                       # doctest: +SKIP
    >>> for event in incoming: state.update(event)                     # doctest: +SKIP
    >>> scorer.score(state)   # P(abandoned)                           # doctest: +SKIP
    """

    def __init__(self, model: LightGBMModel | LogisticModel, context: FeatureContext | None = None) -> None:
        unknown = [c for c in model.encoder_.columns_ if c not in FEATURE_NAMES]
        if unknown:
            raise DataError(
                "This model was trained on a table with other columns than the cart features "
                f"({', '.join(unknown[:5])}); live scoring needs a model trained on a store."
            )
        self.model = model
        self.context = context if context is not None else FeatureContext()
        encoder = model.encoder_
        self._take = [FEATURE_NAMES.index(c) for c in encoder.columns_]
        self._codes: list[dict[str, float] | None] = []
        self._other: list[float] = []
        for c in encoder.columns_:
            cats = encoder.categories_.get(c) if encoder.kinds_[c] == "categorical" else None
            self._codes.append(None if cats is None else {v: float(i) for i, v in enumerate(cats)})
            self._other.append(float(cats.index(OTHER)) if cats and OTHER in cats else math.nan)
        self._row = np.empty((1, len(self._take)), dtype=np.float64)
        self._booster = model.booster_ if isinstance(model, LightGBMModel) else None
        self._shift = model.prior_shift_
        self._calibrator = model.calibrator_

    def session(self) -> SessionState:
        """A fresh state for a new session, reading from this scorer's context."""
        return SessionState(self.context)

    def _encode(self, values: Sequence[Any]) -> np.ndarray:
        row = self._row
        for j, (i, codes) in enumerate(zip(self._take, self._codes, strict=True)):
            v = values[i]
            if v is None:
                row[0, j] = math.nan
            elif codes is None:
                row[0, j] = v
            else:
                row[0, j] = codes.get(v, self._other[j])
        return row

    def score_values(self, values: Sequence[Any]) -> float:
        """P(the model's positive class) for feature values in `FEATURE_NAMES` order."""
        row = self._encode(values)
        if self._booster is not None:
            raw = float(self._booster.predict(row, raw_score=True, num_threads=1)[0])
        else:
            raw = float(self.model._raw(row)[0])
        z = raw - self._shift
        if self._calibrator is not None:
            return self._calibrator.predict_one(z)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def score(self, state: SessionState) -> float:
        """P(abandoned) of the session's cart as of its latest event."""
        return self.score_values(state.values())

    def score_features(self, features: Mapping[str, Any]) -> float:
        """P(abandoned) from a dict of features by name (missing names count as missing values)."""
        return self.score_values([features.get(name) for name in FEATURE_NAMES])
