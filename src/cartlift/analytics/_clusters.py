"""Behavioural customer clusters: k-means with k chosen by silhouette, each cluster described in words."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from cartlift._params import Interval, validate_params
from cartlift._random import RandomState, check_random_state
from cartlift.errors import DataError, NotFittedError
from cartlift.store import EventStore

__all__ = ["FEATURE_WORDS", "CustomerClusters", "customer_features"]

FEATURE_WORDS: dict[str, tuple[str, str, str]] = {
    # feature: (when above average, when below average, unit for the figures)
    "sessions": ("visit often", "visit rarely", "visits"),
    "views_per_session": (
        "look at many products per visit",
        "look at few products per visit",
        "views per visit",
    ),
    "cart_adds": ("add a lot to their cart", "rarely add to cart", "cart adds"),
    "orders": ("order often", "rarely order", "orders"),
    "spend": ("spend a lot", "spend little", "spent"),
    "days_since_last_visit": (
        "have not been back for a while",
        "were here recently",
        "days since last visit",
    ),
    "categories_viewed": ("browse many categories", "stick to few categories", "categories"),
    "avg_viewed_price": ("look at expensive products", "look at cheap products", "average price viewed"),
}
"""The behavioural features and the plain words used to describe a cluster that stands out on them."""

_FEATURES_SQL = """
SELECT e.user_id AS customer,
       count(DISTINCT e.session_id) AS sessions,
       count(*) FILTER (WHERE e.event_type = 'view') / count(DISTINCT e.session_id) AS views_per_session,
       count(*) FILTER (WHERE e.event_type = 'cart_add') AS cart_adds,
       count(DISTINCT coalesce(e.order_id, e.session_id)) FILTER (WHERE e.event_type = 'purchase') AS orders,
       coalesce(sum(e.price * e.quantity) FILTER (WHERE e.event_type = 'purchase'), 0) AS spend,
       date_diff('day', CAST(max(e.ts) AS DATE), CAST((SELECT max(ts) FROM events) AS DATE)) AS days_since_last_visit,
       count(DISTINCT p.category) FILTER (WHERE e.event_type = 'view') AS categories_viewed,
       avg(e.price) FILTER (WHERE e.event_type = 'view') AS avg_viewed_price
FROM events e LEFT JOIN products p ON p.product_id = e.product_id
GROUP BY e.user_id
ORDER BY e.user_id
"""


def customer_features(store: EventStore) -> pd.DataFrame:
    """One row per user (indexed by ``customer``) with the behavioural features of `FEATURE_WORDS`."""
    frame = store.con.execute(_FEATURES_SQL).df().set_index("customer")
    if frame.empty:
        raise DataError("The store has no events: there are no customers to describe.")
    return frame


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}" if abs(x) >= 1 else f"{x:.2f}"


class CustomerClusters:
    """k-means segments of customers on behavioural features, k chosen by the silhouette score.

    Features are log-transformed (counts and money are long-tailed) and standardised; k-means
    is fitted for each k in ``[k_min, k_max]`` and the k with the highest mean silhouette
    (Rousseeuw 1987, *J. Comput. Appl. Math.* 20) is kept. Each cluster is then described by the
    (at most three) features on which it differs most from the other customers, in standard
    deviations of the transformed features, when that difference is at least 0.5.

    Parameters
    ----------
    k_min, k_max : int
        The range of cluster counts tried.
    sample_size : int
        Customers used to score each k (the silhouette is quadratic in the sample).
    n_init : int
        k-means restarts per k.
    random_state : int, Generator or None

    Attributes
    ----------
    k_ : int
    labels_ : numpy.ndarray of shape (n_customers,)
    silhouette_scores_ : dict of int to float
    profiles_ : pandas.DataFrame
        Per cluster: size, share, and the mean of every feature in its own unit.
    descriptions_ : list of str
        One sentence per cluster, e.g. "12% of customers: order often (2.3 orders vs 0.4 for the others)".
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "k_min": [Interval(int, 2, None)],
        "k_max": [Interval(int, 2, None)],
        "sample_size": [Interval(int, 10, None)],
        "n_init": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        k_min: int = 2,
        k_max: int = 8,
        sample_size: int = 3000,
        n_init: int = 4,
        random_state: RandomState = None,
    ) -> None:
        self.k_min = k_min
        self.k_max = k_max
        self.sample_size = sample_size
        self.n_init = n_init
        self.random_state = random_state

    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        values = features[self.features_].to_numpy(dtype=float)
        values = np.where(np.isnan(values), self.fill_, values)
        return (np.log1p(np.maximum(values, 0)) - self.mean_) / self.scale_

    def fit(self, features: pd.DataFrame) -> CustomerClusters:
        """Fit on one row per customer (e.g. `customer_features`); returns self."""
        validate_params(self)
        if self.k_max < self.k_min:
            raise DataError(f"k_max ({self.k_max}) must be >= k_min ({self.k_min}).")
        cols = [c for c in FEATURE_WORDS if c in features]
        if not cols:
            raise DataError(
                f"No behavioural feature columns found. Expected some of {', '.join(FEATURE_WORDS)}; "
                "build them with customer_features(store)."
            )
        raw = features[cols].to_numpy(dtype=float)
        n = raw.shape[0]
        if n < self.k_min + 1:
            raise DataError(
                f"Clustering needs more customers than clusters: got {n} customers for k >= {self.k_min}."
            )
        self.fill_ = np.nanmedian(np.where(np.isnan(raw).all(axis=0), 0.0, raw), axis=0)
        self.fill_ = np.where(np.isnan(self.fill_), 0.0, self.fill_)
        logged = np.log1p(np.maximum(np.where(np.isnan(raw), self.fill_, raw), 0))
        scale = logged.std(axis=0)
        keep = scale > 0  # a feature every customer shares cannot separate anyone
        if not keep.any():
            raise DataError(
                "Every customer has the same behaviour on every feature: there is nothing to cluster."
            )
        self.features_ = [c for c, k in zip(cols, keep, strict=True) if k]
        self.fill_, self.mean_, self.scale_ = self.fill_[keep], logged.mean(axis=0)[keep], scale[keep]
        X = self._matrix(features)
        rng = check_random_state(self.random_state)
        ks = range(self.k_min, min(self.k_max, n - 1) + 1)
        scores: dict[int, float] = {}
        models: dict[int, KMeans] = {}
        sample = min(self.sample_size, n)
        # OpenMP threads buy nothing on a few thousand rows and, on a busy machine, oversubscription
        # made each fit ~50x slower (measured: 4.5k x 7, k=8: 7.9 s threaded vs 0.08 s on one thread)
        limit = threadpool_limits(limits=1) if n < 100_000 else contextlib.nullcontext()
        with limit:
            for k in ks:
                self._fit_k(X, k, rng, sample, scores, models)
        if not scores:
            raise DataError(
                "k-means found fewer than two distinct groups: the customers are too alike to cluster."
            )
        self.k_ = max(scores, key=lambda k: scores[k])
        self.silhouette_scores_ = scores
        self.model_ = models[self.k_]
        # number clusters by size, largest first, so "cluster 1" is the biggest group
        sizes = np.bincount(self.model_.labels_, minlength=self.k_)
        order = np.argsort(-sizes, kind="stable")
        remap = np.empty_like(order)
        remap[order] = np.arange(self.k_)
        self._remap = remap
        self.labels_ = remap[self.model_.labels_]
        self._describe(features, X)
        return self

    def _fit_k(
        self,
        X: np.ndarray,
        k: int,
        rng: np.random.Generator,
        sample: int,
        scores: dict[int, float],
        models: dict[int, KMeans],
    ) -> None:
        model = KMeans(n_clusters=k, n_init=self.n_init, random_state=int(rng.integers(2**31 - 1))).fit(X)
        if len(np.unique(model.labels_)) < 2:
            return
        scores[k] = float(
            silhouette_score(X, model.labels_, sample_size=sample, random_state=int(rng.integers(2**31 - 1)))
        )
        models[k] = model

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """The cluster (0 = largest) of each customer."""
        if not hasattr(self, "model_"):
            raise NotFittedError("This CustomerClusters is not fitted yet: call fit(features) first.")
        return np.asarray(self._remap[self.model_.predict(self._matrix(features))])

    def _describe(self, features: pd.DataFrame, X: np.ndarray) -> None:
        raw = features[self.features_].astype(float)
        rows, words = [], []
        n = len(raw)
        for c in range(self.k_):
            mask = self.labels_ == c
            # against the other customers, not the overall mean: a cluster holding most customers
            # *is* the overall mean, yet differs clearly from the rest
            z = X[mask].mean(axis=0) - X[~mask].mean(axis=0)
            means, others = raw[mask].mean(), raw[~mask].mean()
            top = [i for i in np.argsort(-np.abs(z)) if abs(z[i]) >= 0.5][:3]
            parts = []
            for i in top:
                f = self.features_[i]
                high, low, unit = FEATURE_WORDS[f]
                parts.append(
                    f"{high if z[i] > 0 else low} ({_fmt(means[f])} {unit} vs {_fmt(others[f])} for the others)"
                )
            text = "; ".join(parts) if parts else "much like the other customers on every feature"
            share = mask.sum() / n
            words.append(f"{share:.0%} of customers: {text}")
            rows.append({"cluster": c + 1, "customers": int(mask.sum()), "share": share, **means.to_dict()})
        self.profiles_ = pd.DataFrame(rows)
        self.descriptions_ = words
