"""Popularity baselines: global, per category (weighted by the user's category taste), trending."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift._params import Constraint, Interval, Options
from cartlift.errors import DataError
from cartlift.recommend._base import Recommender
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._query import Query

__all__ = ["Popularity"]

_SECONDS_PER_DAY = 86_400.0
_FLOOR = 0.01


class Popularity(Recommender):
    """The most popular items, the same for everyone (or per category, or trending now).

    Parameters
    ----------
    mode : {"global", "category", "trending"}
        ``global``: number of distinct users per item. ``category``: global popularity times the
        user's share of interest in the item's category (plus a small floor, so untouched categories
        still rank by popularity); needs a catalog with categories. ``trending``: event weights
        decayed with ``half_life_days`` from the latest event, so recent interest dominates.
    half_life_days : float
        Half-life of the trending decay.

    Attributes
    ----------
    popularity_ : ndarray of float64, shape (n_items,)
        The item scores (distinct users, or decayed weight for ``trending``).
    category_ : ndarray of int64, shape (n_items,)
        Category code of each item (-1: none); ``category`` mode only.
    reference_time_ : float
        Time the trending decay is measured from (epoch seconds).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "mode": [Options(("global", "category", "trending"))],
        "half_life_days": [Interval(float, 0, None, closed="neither")],
    }

    def __init__(self, mode: str = "global", half_life_days: float = 7.0) -> None:
        self.mode = mode
        self.half_life_days = half_life_days

    def _fit(self, interactions: Interactions) -> None:
        self.category_ = np.full(len(self.item_ids_), -1, np.int64)
        self.reference_time_ = float(interactions.ts.max()) if len(interactions) else 0.0
        if self.mode == "trending":
            self.popularity_ = np.bincount(
                interactions.item, weights=self._decay(interactions.ts), minlength=len(self.item_ids_)
            )
        else:
            self.popularity_ = np.diff(self.user_items_.tocsc().indptr).astype(np.float64)
        if self.mode == "category":
            catalog = interactions.catalog
            if catalog is None or "category" not in catalog.columns or catalog["category"].isna().all():
                raise DataError(
                    "Popularity(mode='category') needs a catalog with categories (products.category); "
                    "use mode='global' for data without one."
                )
            codes, _ = pd.factorize(catalog["category"])
            self.category_ = np.asarray(codes, np.int64)

    def _decay(self, ts: np.ndarray) -> np.ndarray:
        age = np.maximum(self.reference_time_ - ts, 0.0) / _SECONDS_PER_DAY
        return np.exp2(-age / self.half_life_days)

    def _partial_fit(
        self, interactions: Interactions, item_map: np.ndarray, added: sp.csr_matrix, users: np.ndarray
    ) -> None:
        if self.mode != "trending":
            self.popularity_ = np.diff(self.user_items_.tocsc().indptr).astype(np.float64)
            return
        cols = item_map[interactions.item]
        known = cols >= 0
        newest = float(interactions.ts.max()) if len(interactions) else self.reference_time_
        if newest > self.reference_time_:
            # move the old scores to the new reference time: decay is multiplicative
            self.popularity_ = self.popularity_ * np.exp2(
                -(newest - self.reference_time_) / _SECONDS_PER_DAY / self.half_life_days
            )
            self.reference_time_ = newest
        self.popularity_ = self.popularity_ + np.bincount(
            cols[known], weights=self._decay(interactions.ts[known]), minlength=len(self.item_ids_)
        )

    def _order(self) -> np.ndarray:
        """Every item, best first (ties: lower column, as `top_k`), kept while the scores stay the same."""
        cached = self.__dict__.get("_order_cache")
        if cached is None or cached[0] is not self.popularity_:
            cached = (self.popularity_, np.lexsort((np.arange(len(self.popularity_)), -self.popularity_)))
            self.__dict__["_order_cache"] = cached
        order: np.ndarray = cached[1]
        return order

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.mode == "category":
            return super()._ranked(query, k)
        # the same list for everyone: walk the ranking made once, skipping each row's exclusions,
        # instead of selecting from a dense row of every item per query
        order = self._order()
        n = len(query.rows)
        idx = np.full((n, k), -1, np.int64)
        vals = np.full((n, k), np.nan)
        ex = query.exclude.tocsr() if query.exclude is not None and query.exclude.nnz else None
        allowed = None if query.allowed is None else np.atleast_2d(np.asarray(query.allowed, bool))
        banned = np.zeros(len(order), bool)  # np.isin per row cost ~1 ms on a long history
        for r in range(n):
            ranked = order if allowed is None else order[allowed[r if allowed.shape[0] > 1 else 0][order]]
            if ex is not None:
                gone = ex.indices[ex.indptr[r] : ex.indptr[r + 1]]
                banned[gone] = True
                head = ranked[: k + len(gone)]
                ranked = head[~banned[head]]
                banned[gone] = False
            top = ranked[:k]
            idx[r, : len(top)] = top
            vals[r, : len(top)] = self.popularity_[top]
        return idx, vals

    def _score(self, query: Query) -> np.ndarray:
        n = query.history.shape[0]
        base = np.broadcast_to(self.popularity_, (n, len(self.popularity_))).astype(np.float64)
        if self.mode != "category":
            return base
        has = self.category_ >= 0
        n_cat = int(self.category_.max()) + 1 if has.any() else 0
        to_cat = sp.csr_matrix(
            (np.ones(int(has.sum())), (np.flatnonzero(has), self.category_[has])),
            shape=(len(self.item_ids_), max(n_cat, 1)),
        )
        taste = np.asarray((query.history @ to_cat).todense(), np.float64)
        total = taste.sum(axis=1, keepdims=True)
        share = np.divide(taste, total, out=np.zeros_like(taste), where=total > 0)
        item_share = np.where(has, share[:, np.maximum(self.category_, 0)], 0.0)
        top = self.popularity_.max() if len(self.popularity_) else 1.0
        # the floor keeps items of untouched categories (and cold users) in popularity order
        return base / max(top, 1e-12) * (item_share + _FLOOR)
