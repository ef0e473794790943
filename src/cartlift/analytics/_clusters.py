"""Behavioural customer segments: k-means, HDBSCAN or a self-organising map, compared and described in words."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar, Final

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from cartlift._params import Interval, Options, validate_params
from cartlift._random import RandomState, check_random_state
from cartlift.analytics._cluster_methods import (
    METHODS,
    NOISE,
    Fit,
    bootstrap_stability,
    search,
    setting_label,
)
from cartlift.analytics._segment_words import FEATURE_WORDS, describe_segments
from cartlift.errors import DataError, NotFittedError
from cartlift.store import EventStore

__all__ = ["FEATURE_WORDS", "METHODS", "STABLE", "CustomerClusters", "customer_features"]

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


STABLE: Final = 0.75
"""Mean bootstrap ARI a method needs for `auto` to prefer it on silhouette. Hennig (2007, *Comput.
Stat. Data Anal.* 52) calls a cluster with mean bootstrap Jaccard of 0.75 or more stable and
0.6-0.75 only a pattern; we use the same bar for the ARI of a whole partition. With 0.6, a SOM of
mean ARI 0.63 (interval 0.11-0.98) was kept over HDBSCAN at 0.98 for a silhouette 0.01 higher."""


class CustomerClusters:
    """Segments of customers on behavioural features: k-means, HDBSCAN or a self-organising map.

    Features are log-transformed (counts and money are long-tailed) and standardised. Each method
    is fitted over a small grid of its size setting (k for k-means, from ``k_min`` to ``k_max``;
    the smallest cluster, 2, 5 or 10 % of customers, for HDBSCAN; a map of ``k_min`` to ``k_max``
    nodes for the SOM) and the setting with the best mean silhouette (Rousseeuw 1987, *J. Comput.
    Appl. Math.* 20; a customer HDBSCAN leaves as noise counts 0) is kept. Its stability is the
    mean adjusted Rand index between refits on ``n_boot`` bootstrap samples. ``method="auto"`` fits
    all three and keeps the best silhouette among those of stability at least `STABLE`, else the
    most stable.

    Each segment is then described (`describe_segments`) by the (at most three) features on which
    it differs most from the other customers. Segments are numbered by size, largest first;
    HDBSCAN's noise, when there is any, is the last segment, "no clear group".

    Parameters
    ----------
    method : {"kmeans", "hdbscan", "som", "auto"}
    k_min, k_max : int
        The range of segment counts tried (k-means and SOM).
    sample_size : int
        Customers the silhouette is computed on (it is quadratic in the sample).
    fit_size : int
        Customers the methods are fitted on; the others are assigned to the nearest segment (the
        nearest centroid, node or, for HDBSCAN, fitted customer).
    n_init : int
        k-means restarts per k.
    n_boot : int
        Bootstrap refits for the stability; 0 skips it (``auto`` then uses the silhouette alone).
    random_state : int, Generator or None

    Attributes
    ----------
    method_ : str
        The method kept.
    setting_ : str
        Its size setting ("3", "5%", "2x3").
    params_ : dict
        The same as the method's parameters (``{"k": 3, "n_init": 4}``, ``{"min_share": 0.05}``,
        ``{"shape": (2, 3)}``), for refitting it with `cartlift.analytics._cluster_methods.fit_method`.
    k_ : int
        Segments found, not counting noise.
    labels_ : numpy.ndarray of shape (n_customers,)
        0 = largest segment; noise (if any) is ``k_``.
    noise_ : int or None
        The label of HDBSCAN's unclustered customers, or None.
    silhouette_ : float
    silhouette_scores_ : dict of str to float
        The kept method's silhouette by setting.
    stability_ : tuple of float or None
        Mean bootstrap ARI and its 95 % percentile interval over the pairs of refits.
    comparison_ : dict of str to dict
        Per method fitted: setting, segments, noise share, silhouette, silhouette by setting and stability.
    profiles_ : pandas.DataFrame
        Per segment: size, share, revenue share and the mean of every feature (`describe_segments`).
    descriptions_ : list of str
        One sentence per segment, e.g. "12% of customers: order 4.1x the others' average (2.3 vs 0.6 orders)".
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "method": [Options((*METHODS, "auto"))],
        "k_min": [Interval(int, 2, None)],
        "k_max": [Interval(int, 2, None)],
        "sample_size": [Interval(int, 10, None)],
        "fit_size": [Interval(int, 10, None)],
        "n_init": [Interval(int, 1, None)],
        "n_boot": [Interval(int, 0, None)],
    }

    def __init__(
        self,
        method: str = "kmeans",
        k_min: int = 2,
        k_max: int = 8,
        sample_size: int = 3000,
        fit_size: int = 5000,
        n_init: int = 4,
        n_boot: int = 10,
        random_state: RandomState = None,
    ) -> None:
        self.method = method
        self.k_min = k_min
        self.k_max = k_max
        self.sample_size = sample_size
        self.fit_size = fit_size
        self.n_init = n_init
        self.n_boot = n_boot
        self.random_state = random_state

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """The log-scaled, standardised matrix the segments are found in, shape (n_customers, n_features_)."""
        values = features[self.features_].to_numpy(dtype=float)
        values = np.where(np.isnan(values), self.fill_, values)
        return (np.log1p(np.maximum(values, 0)) - self.mean_) / self.scale_

    def _prepare(self, features: pd.DataFrame) -> np.ndarray:
        """Choose the usable features and learn their scaling; the standardised matrix."""
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
        return self.transform(features)

    def fit(
        self, features: pd.DataFrame, progress: Callable[[str, float], None] | None = None
    ) -> CustomerClusters:
        """Fit on one row per customer (e.g. `customer_features`); returns self.

        ``progress(label, percent)``, when given, follows each method's search and refits.
        """
        validate_params(self)
        if self.k_max < self.k_min:
            raise DataError(f"k_max ({self.k_max}) must be >= k_min ({self.k_min}).")
        X = self._prepare(features)
        n = len(X)
        rng = check_random_state(self.random_state)
        rows = np.sort(rng.choice(n, size=min(self.fit_size, n), replace=False))
        Xf = X[rows]
        k_max = min(self.k_max, len(Xf) - 1)
        methods = METHODS if self.method == "auto" else (self.method,)
        fits: dict[str, Fit] = {}
        self.comparison_: dict[str, dict[str, Any]] = {}
        # OpenMP threads buy nothing on a few thousand rows and, on a busy machine, oversubscription
        # made each fit ~50x slower (measured: 4.5k x 7, k=8: 7.9 s threaded vs 0.08 s on one thread)
        limit = threadpool_limits(limits=1) if len(Xf) < 100_000 else contextlib.nullcontext()
        with limit:
            for method in methods:
                fit = self._fit_one(method, Xf, rng, k_max, progress)
                if fit is not None:
                    fits[method] = fit
        if not fits:
            raise DataError(
                f"{' / '.join(methods)} found fewer than two distinct groups: "
                "the customers are too alike to cluster."
            )
        self.method_ = self._choose()
        chosen, summary = fits[self.method_], self.comparison_[self.method_]
        self.setting_, self.params_ = summary["setting"], chosen.params
        self.silhouette_ = summary["silhouette"]
        self.silhouette_scores_ = summary["silhouette_by_setting"]
        self.stability_ = summary["stability"]
        self.assign_ = chosen.assign
        self._order(chosen.labels)
        self.labels_ = self._relabel(chosen.labels if n == len(Xf) else chosen.assign(X))
        self.profiles_, self.descriptions_ = describe_segments(
            features[self.features_], X, self.labels_, noise=self.noise_
        )
        return self

    def _fit_one(
        self,
        method: str,
        X: np.ndarray,
        rng: np.random.Generator,
        k_max: int,
        progress: Callable[[str, float], None] | None,
    ) -> Fit | None:
        """Search ``method``'s settings, measure the stability of the best; record both in `comparison_`."""
        label = f"segments by {method}"
        fit, scores = search(
            method, X, rng, k_min=self.k_min, k_max=k_max, n_init=self.n_init, sample=self.sample_size
        )
        if fit is None:
            return None
        # with 10 refits the search is about a fifth of a method's time
        tick = None if progress is None else (lambda f: progress(label, 20 + 80 * f))
        if progress is not None:
            progress(label, 20)
        setting = setting_label(fit.params)
        found = np.unique(fit.labels[fit.labels != NOISE])
        stability = bootstrap_stability(fit, X, rng, self.n_boot, tick=tick) if self.n_boot >= 2 else None
        if progress is not None:
            progress(label, 100)
        self.comparison_[method] = {
            "setting": setting,
            "segments": len(found),
            "noise_share": float(np.mean(fit.labels == NOISE)),
            "silhouette": scores[setting],
            "silhouette_by_setting": scores,
            "stability": stability,
        }
        return fit

    def _choose(self) -> str:
        """The best silhouette among the stable methods; else the most stable; without bootstrap, the best silhouette."""
        rows = self.comparison_
        stable = [m for m, r in rows.items() if r["stability"] is not None and r["stability"][0] >= STABLE]
        if stable:
            return max(stable, key=lambda m: rows[m]["silhouette"])
        if any(r["stability"] is not None for r in rows.values()):
            return max(rows, key=lambda m: rows[m]["stability"][0] if rows[m]["stability"] else -1.0)
        return max(rows, key=lambda m: rows[m]["silhouette"])

    def _order(self, labels: np.ndarray) -> None:
        """Number segments by size on the fitted customers, largest first, noise last."""
        kept = labels[labels != NOISE]
        ids, sizes = np.unique(kept, return_counts=True)
        order = ids[np.argsort(-sizes, kind="stable")]
        self._remap = {int(old): new for new, old in enumerate(order)}
        self.k_ = len(order)
        self.noise_ = self.k_ if (labels == NOISE).any() else None
        if self.noise_ is not None:
            self._remap[NOISE] = self.noise_

    def _relabel(self, raw: np.ndarray) -> np.ndarray:
        # every method's assign only gives labels some fitted customer has, so each has a number
        return np.array([self._remap[int(v)] for v in raw], dtype=int)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """The segment (0 = largest; noise, if any, last) of each customer."""
        if not hasattr(self, "assign_"):
            raise NotFittedError("This CustomerClusters is not fitted yet: call fit(features) first.")
        return self._relabel(self.assign_(self.transform(features)))
