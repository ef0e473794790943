"""Session-based k-nearest neighbours: SKNN and V-SKNN (Ludewig and Jannach, 2018).

The current session (or cart) is compared with past sessions that share an item with it; only
the ``sample_size`` most recent of those are considered (recency matters in e-commerce and it
bounds the cost). The ``n_neighbors`` most similar ones vote for their items with their
similarity. In the session-rec benchmark these simple models match or beat GRU4Rec, NARM and
STAMP on HR@20 / MRR@20.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift._params import Constraint, Interval, Options
from cartlift.recommend._base import Recommender
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._kernels import HAS_NUMBA
from cartlift.recommend._knn import _evidence
from cartlift.recommend._query import Query
from cartlift.recommend._session_kernels import neighbour_pool, query_filters, session_knn_topk

__all__ = ["SessionKNN", "nearest_sessions"]


def _rank_within_rows(rows: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of the entries by row then by ``keys`` (last key first, as ``np.lexsort``), and each
    entry's 0-based rank inside its row in that order."""
    order = np.lexsort((*keys, rows))
    sorted_rows = rows[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_rows, sorted_rows, side="left")
    return order, rank


def nearest_sessions(
    dots: sp.csr_matrix,
    own: np.ndarray,
    session_time: np.ndarray,
    sample_size: int,
    n_neighbors: int,
    similarity: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> sp.csr_matrix:
    """The neighbour sessions of each query row, as a (queries x sessions) matrix of similarities.

    The session-kNN lookup that SKNN, V-SKNN, STAN and VSTAN share: among the past sessions with a
    positive overlap ``dots[r, s]`` with row ``r`` (its own latest session ``own[r]`` excluded),
    keep the ``sample_size`` most recent, score them with ``similarity(rows, sessions, overlaps)``
    and keep the ``n_neighbors`` most similar. Vectorised over all rows at once (no Python loop
    per query); ties go to the lower session index.
    """
    dots = sp.csr_matrix(dots)
    n, n_sessions = dots.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(dots.indptr))
    cols = dots.indices.astype(np.int64)
    vals = dots.data.astype(np.float64)
    keep = (cols != own[rows]) & (vals > 0)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    if len(rows) and np.bincount(rows, minlength=n).max() > sample_size:
        order, rank = _rank_within_rows(rows, cols, -session_time[cols])  # newest first
        pick = order[rank < sample_size]
        rows, cols, vals = rows[pick], cols[pick], vals[pick]
    sims = similarity(rows, cols, vals)
    if len(rows) and np.bincount(rows, minlength=n).max() > n_neighbors:
        order, rank = _rank_within_rows(rows, cols, -sims)  # most similar first
        pick = order[rank < n_neighbors]
        rows, cols, sims = rows[pick], cols[pick], sims[pick]
    return sp.csr_matrix((sims, (rows, cols)), shape=(n, n_sessions))


class SessionKNN(Recommender):
    """Session-kNN: recommend what similar recent sessions contained.

    ``variant="sknn"`` compares item sets by cosine, ``|s & n| / sqrt(|s| |n|)``.
    ``variant="vsknn"`` weights the current session's items by position (the ``p``-th of ``L``
    items weighs ``p / L``, so the latest click counts most) and, with ``idf=True``, by the
    rarity of each item, ``log(n_sessions / n_sessions_with_item)``; the similarity is the
    weighted overlap divided by the norms. A known user's context is their latest session.

    Parameters
    ----------
    n_neighbors : int
        Neighbour sessions that vote.
    sample_size : int
        Most recent candidate sessions (sharing an item) to compare with.
    variant : {"sknn", "vsknn"}
        Plain set cosine, or position-decayed (and idf-weighted) overlap.
    idf : bool
        Weight items by rarity (V-SKNN only).

    Attributes
    ----------
    sessions_ : csr_matrix of float32, shape (n_sessions, n_items)
        Past sessions as item sets.
    session_time_ : ndarray of float64, shape (n_sessions,)
        Time of each session's last event.
    user_session_ : ndarray of int64, shape (n_users,)
        Each user's latest session (-1: none); excluded from that user's own neighbours.
    idf_ : ndarray of float64, shape (n_items,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "n_neighbors": [Interval(int, 1, None)],
        "sample_size": [Interval(int, 1, None)],
        "variant": [Options(("sknn", "vsknn"))],
        "idf": [bool],
    }

    def __init__(
        self, n_neighbors: int = 100, sample_size: int = 500, variant: str = "vsknn", idf: bool = True
    ) -> None:
        self.n_neighbors = n_neighbors
        self.sample_size = sample_size
        self.variant = variant
        self.idf = idf

    def _fit(self, interactions: Interactions) -> None:
        self.sessions_ = interactions.session_matrix.astype(np.float32)
        self.session_time_ = interactions.session_time.astype(np.float64)
        self.user_session_ = interactions.last_session.astype(np.int64)
        self._set_idf()

    def _set_idf(self) -> None:
        # the item -> sessions index, built once (transposing on every query cost a millisecond)
        self.__dict__["_sessions_t_cache"] = self.sessions_.T.tocsr()
        self.__dict__["_size_sqrt_cache"] = np.sqrt(np.diff(self.sessions_.indptr).astype(np.float64))
        df = np.diff(self.__dict__["_sessions_t_cache"].indptr).astype(np.float64)
        self.idf_ = np.log(max(self.sessions_.shape[0], 1) / np.maximum(df, 1.0))

    def _set_state(self, scalars: dict[str, object], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(scalars, arrays)
        self._set_idf()  # the caches (idf_ comes out the same)

    def _partial_fit(
        self, interactions: Interactions, item_map: np.ndarray, added: sp.csr_matrix, users: np.ndarray
    ) -> None:
        # the new sessions join the neighbour pool: this is the whole "model" of session-kNN
        cols = item_map[interactions.item]
        known = cols >= 0
        new = sp.csr_matrix(
            (np.ones(int(known.sum()), np.float32), (interactions.session[known], cols[known])),
            shape=(interactions.n_sessions, len(self.item_ids_)),
        )
        new.sum_duplicates()
        new.data[:] = 1.0
        offset = self.sessions_.shape[0]
        self.sessions_ = sp.vstack([self.sessions_, new]).tocsr()
        self.session_time_ = np.concatenate([self.session_time_, interactions.session_time])
        grow = len(self.user_ids_) - len(self.user_session_)
        self.user_session_ = np.concatenate([self.user_session_, np.full(max(grow, 0), -1, np.int64)])
        user_map = self._user_index.get_indexer(pd.Index(interactions.user_ids))
        last = interactions.last_session
        has = last >= 0
        self.user_session_[user_map[has]] = offset + last[has]
        self._set_idf()

    def _query_arrays(self, query: Query) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weighted query vectors (CSR ``indptr``, items, weights) from the sequences (or the
        history when a row has none)."""
        cols, vals = [], []
        indptr = np.zeros(len(query.sequences) + 1, np.int64)
        for r, seq in enumerate(query.sequences):
            if len(seq) == 0:
                seq = query.history.indices[query.history.indptr[r] : query.history.indptr[r + 1]]
                weight = np.ones(len(seq))
            else:
                # a repeated click counts once, at its latest position
                _, rev_first = np.unique(np.asarray(seq)[::-1], return_index=True)
                seq = np.asarray(seq)[np.sort(len(seq) - 1 - rev_first)]
                weight = np.ones(len(seq))
            if self.variant == "vsknn" and len(seq):
                weight = np.arange(1, len(seq) + 1) / len(seq)
            indptr[r + 1] = indptr[r] + len(seq)
            cols.append(np.asarray(seq, np.int64))
            vals.append(weight)
        items = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        weights = np.concatenate(vals) if vals else np.zeros(0)
        if self.variant == "vsknn" and self.idf:
            weights = weights * self.idf_[items]
        return indptr, items, weights

    def _queries(self, query: Query) -> sp.csr_matrix:
        """Weighted query vectors from the sequences (or the history when a row has none)."""
        indptr, items, weights = self._query_arrays(query)
        return sp.csr_matrix((weights, items, indptr), shape=(len(query.sequences), len(self.item_ids_)))

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not HAS_NUMBA:
            return super()._ranked(query, k)
        # the same scores as _score, one row at a time without SciPy (a single query: ~0.1 ms)
        indptr, items, weights = self._query_arrays(query)
        ones = np.ones(len(items))
        own = np.where(query.rows >= 0, self.user_session_[np.maximum(query.rows, 0)], -1)
        pool = neighbour_pool(self, 0.0, 0.0)
        m = self.sessions_
        votes = (m.indptr, m.indices, m.data, 0.0, np.zeros(0), 0.0, True)
        exclude, allowed = query_filters(query, len(self.item_ids_))
        lengths = np.ones(len(query.sequences))
        return session_knn_topk(
            (indptr, items, weights, ones, lengths, own), pool, votes, k, exclude, allowed
        )

    def _score(self, query: Query) -> sp.csr_matrix:
        q = self._queries(query)
        dots = (q @ self.__dict__["_sessions_t_cache"]).tocsr()
        q_norm = np.sqrt(np.asarray(q.multiply(q).sum(axis=1)).ravel())
        s_len = np.sqrt(np.diff(self.sessions_.indptr).astype(np.float64))
        own = np.where(query.rows >= 0, self.user_session_[np.maximum(query.rows, 0)], -1)
        weights = nearest_sessions(
            dots,
            own,
            self.session_time_,
            self.sample_size,
            self.n_neighbors,
            lambda rows, cols, vals: vals / (q_norm[rows] * s_len[cols]),
        )
        return _evidence(weights @ self.sessions_)
