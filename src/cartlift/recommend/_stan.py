"""STAN and VSTAN: session-kNN aware of sequence and time (Garg et al., 2019; Ludewig et al., 2021).

Like V-SKNN, the current session is compared with recent past sessions that share an item with
it, and the nearest ones vote for their items. STAN adds three exponential decays, each with its
own length ``lambda``:

- **spw**, position in the current session: the ``p``-th of ``L`` clicks weighs
  ``exp((p - L) / lambda_spw)``; similarity is the weighted overlap over the norms,
  ``sum_{i in s & n} w_i / (sqrt(sum_{i in s} w_i^2) sqrt(|n|))``;
- **snh**, age of the neighbour: the similarity is multiplied by ``exp(-(t - t_n) / lambda_snh)``
  (``lambda_snh`` in days);
- **inh**, distance inside the neighbour: neighbour ``n`` gives item ``j`` its similarity times
  ``exp(-|pos_n(j) - pos_n(*)| / lambda_inh)``, where ``pos_n(*)`` is the last position in ``n``
  of an item of the current session (so items clicked right around the shared one count most).

VSTAN (Ludewig et al., 2021) also multiplies each vote by ``exp((p* - L) / lambda_ipw)``, with
``p*`` the latest position in the current session of an item the neighbour shares, and by
``1 + lambda_idf * idf_j``, with ``idf_j = log(n_sessions / clicks of j)``.

The defaults are session-rec's published ones (``algorithms/knn/stan.py`` and ``vstan.py``):
``sample_size=5000, lambda_spw=1.02, lambda_snh=5, lambda_inh=2.05`` and for VSTAN
``lambda_ipw=1.02, lambda_idf=5``; ``n_neighbors=100``.

Time: every query is taken to come after the training data, and the neighbour decay is measured
from the newest training session. Measuring it from any later moment multiplies every
neighbour's similarity by the same constant, so the ranking is exactly the one of session-rec
(which measures from the query's own time stamp).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift._params import Constraint, Interval
from cartlift.recommend._base import Recommender, take_rows
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._kernels import HAS_NUMBA
from cartlift.recommend._knn import _evidence
from cartlift.recommend._query import Query
from cartlift.recommend._session import nearest_sessions
from cartlift.recommend._session_kernels import neighbour_pool, query_filters, session_knn_topk

__all__ = ["STAN", "VSTAN"]

_DAY = 86_400.0
_OPTIONAL_LAMBDA: list[Constraint] = [Interval(float, 0, None, closed="neither"), None]


def _last_positions(
    session: np.ndarray, item: np.ndarray, ts: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """Session x item matrix of each item's last click position in the session (1-based)."""
    order = np.lexsort((np.arange(len(session)), ts, session))
    s, i = session[order].astype(np.int64), item[order].astype(np.int64)
    pos = (np.arange(len(s)) - np.searchsorted(s, s, side="left") + 1).astype(np.float64)
    uniq, inverse = np.unique(s * shape[1] + i, return_inverse=True)
    last = np.zeros(len(uniq))
    np.maximum.at(last, inverse, pos)  # a repeated item keeps its last click
    rows, cols = uniq // shape[1], uniq % shape[1]
    return sp.csr_matrix((last, (rows, cols)), shape=shape)


class STAN(Recommender):
    """Sequence and Time Aware Neighbourhood (Garg et al., SIGIR 2019).

    Parameters
    ----------
    n_neighbors : int
        Neighbour sessions that vote (``k``).
    sample_size : int
        Most recent candidate sessions (sharing an item with the current one) compared.
    lambda_spw : float or None
        Decay length of positions in the current session (None: all clicks weigh 1).
    lambda_snh : float or None
        Decay length of the neighbours' age, in days (None: no decay).
    lambda_inh : float or None
        Decay length of positions inside a neighbour (None: every item of it weighs 1).
    lambda_ipw : float or None
        VSTAN's decay of the current-session position of the shared item (None: off).
    lambda_idf : float or None
        VSTAN's idf boost ``1 + lambda_idf * idf`` (None: off).
    remind : bool
        Let neighbours vote for items of the current session too (repeat clicks are common).

    Attributes
    ----------
    positions_ : csr_matrix of float64, shape (n_sessions, n_items)
        Last position (1-based) of each item in each past session.
    n_distinct_ : ndarray of float64, shape (n_sessions,)
    session_time_ : ndarray of float64, shape (n_sessions,)
    user_session_ : ndarray of int64, shape (n_users,)
        Each user's latest session (-1: none); never that user's own neighbour.
    idf_ : ndarray of float64, shape (n_items,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "n_neighbors": [Interval(int, 1, None)],
        "sample_size": [Interval(int, 1, None)],
        "lambda_spw": _OPTIONAL_LAMBDA,
        "lambda_snh": _OPTIONAL_LAMBDA,
        "lambda_inh": _OPTIONAL_LAMBDA,
        "lambda_ipw": _OPTIONAL_LAMBDA,
        "lambda_idf": [Interval(float, 0, None), None],
        "remind": [bool],
    }

    def __init__(
        self,
        n_neighbors: int = 100,
        sample_size: int = 5000,
        lambda_spw: float | None = 1.02,
        lambda_snh: float | None = 5.0,
        lambda_inh: float | None = 2.05,
        lambda_ipw: float | None = None,
        lambda_idf: float | None = None,
        remind: bool = True,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.sample_size = sample_size
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh
        self.lambda_ipw = lambda_ipw
        self.lambda_idf = lambda_idf
        self.remind = remind

    # -- fitting -------------------------------------------------------------------------------
    def _fit(self, interactions: Interactions) -> None:
        shape = (interactions.n_sessions, interactions.n_items)
        self.positions_ = _last_positions(interactions.session, interactions.item, interactions.ts, shape)
        self.session_time_ = interactions.session_time.astype(np.float64)
        self.user_session_ = interactions.last_session.astype(np.int64)
        self.clicks_ = np.bincount(interactions.item, minlength=interactions.n_items).astype(np.float64)
        self._derive()

    def _derive(self) -> None:
        self.n_distinct_ = np.diff(self.positions_.indptr).astype(np.float64)
        n_sessions = max(self.positions_.shape[0], 1)
        self.idf_ = np.log(n_sessions / np.maximum(self.clicks_, 1.0))
        binary = self.positions_.copy()
        binary.data = np.ones_like(binary.data)
        self.__dict__["_sessions_t_cache"] = binary.T.tocsr()
        self.__dict__["_size_sqrt_cache"] = np.sqrt(self.n_distinct_)
        self.__dict__["_newest_cache"] = float(self.session_time_.max()) if len(self.session_time_) else 0.0

    def _partial_fit(
        self, interactions: Interactions, item_map: np.ndarray, added: sp.csr_matrix, users: np.ndarray
    ) -> None:
        # the new sessions join the neighbour pool: the whole "model" of a session-kNN
        cols = item_map[interactions.item]
        known = cols >= 0
        new = _last_positions(
            interactions.session[known],
            cols[known],
            interactions.ts[known],
            (interactions.n_sessions, len(self.item_ids_)),
        )
        offset = self.positions_.shape[0]
        self.positions_ = sp.vstack([self.positions_, new]).tocsr()
        self.session_time_ = np.concatenate([self.session_time_, interactions.session_time])
        self.clicks_ = self.clicks_ + np.bincount(cols[known], minlength=len(self.item_ids_))
        grow = len(self.user_ids_) - len(self.user_session_)
        self.user_session_ = np.concatenate([self.user_session_, np.full(max(grow, 0), -1, np.int64)])
        user_map = self._user_index.get_indexer(pd.Index(interactions.user_ids))
        last = interactions.last_session
        has = last >= 0
        self.user_session_[user_map[has]] = offset + last[has]
        self._derive()

    def _set_state(self, scalars: dict[str, object], arrays: dict[str, np.ndarray]) -> None:
        super()._set_state(scalars, arrays)
        self._derive()

    # -- scoring -------------------------------------------------------------------------------
    def _current_arrays(self, query: Query) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Each row's distinct items (CSR ``indptr``, ascending ``items``), their last position
        (1-based) in the row's session, and each session's length."""
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        pos: list[np.ndarray] = []
        lengths = np.zeros(len(query.sequences), np.float64)
        for r, seq in enumerate(query.sequences):
            seq = np.asarray(seq, np.int64)
            if len(seq) == 0:  # no session: the history, unordered, all at the latest position
                seq = query.history.indices[query.history.indptr[r] : query.history.indptr[r + 1]]
                p = np.ones(len(seq))
                lengths[r] = 1.0
            else:
                p = np.arange(1, len(seq) + 1, dtype=np.float64)
                lengths[r] = len(seq)
            rows.append(np.full(len(seq), r))
            cols.append(np.asarray(seq, np.int64))
            pos.append(p)
        n, n_items = len(query.sequences), len(self.item_ids_)
        indptr = np.zeros(n + 1, np.int64)
        if not rows:
            return indptr, np.zeros(0, np.int64), np.zeros(0), lengths
        key = np.concatenate(rows) * n_items + np.concatenate(cols)
        uniq, inverse = np.unique(key, return_inverse=True)
        last = np.zeros(len(uniq))
        np.maximum.at(last, inverse, np.concatenate(pos))
        np.cumsum(np.bincount(uniq // n_items, minlength=n), out=indptr[1:])
        return indptr, uniq % n_items, last, lengths

    def _current(self, query: Query) -> tuple[sp.csr_matrix, np.ndarray]:
        """Last position (1-based) of each item of each row's session, and each session's length."""
        indptr, items, last, lengths = self._current_arrays(query)
        shape = (len(query.sequences), len(self.item_ids_))
        return sp.csr_matrix((last, items, indptr), shape=shape), lengths

    def _neighbours(self, current: sp.csr_matrix, lengths: np.ndarray, own: np.ndarray) -> sp.csr_matrix:
        """Query x session similarities of the ``n_neighbors`` nearest sampled sessions."""
        weights = current.copy()
        if self.lambda_spw is not None:
            row_len = np.repeat(lengths, np.diff(weights.indptr))
            weights.data = np.exp((weights.data - row_len) / self.lambda_spw)
        else:
            weights.data = np.ones_like(weights.data)
        dots = (weights @ self.__dict__["_sessions_t_cache"]).tocsr()
        norm = np.sqrt(np.asarray(weights.multiply(weights).sum(axis=1)).ravel())
        newest = float(self.session_time_.max()) if len(self.session_time_) else 0.0

        def similarity(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
            sims = vals / (norm[rows] * np.sqrt(self.n_distinct_[cols]))
            if self.lambda_snh is not None:
                sims = sims * np.exp(-(newest - self.session_time_[cols]) / (self.lambda_snh * _DAY))
            return sims

        return nearest_sessions(dots, own, self.session_time_, self.sample_size, self.n_neighbors, similarity)

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not HAS_NUMBA:
            return super()._ranked(query, k)
        # the same scores as _score, one row at a time without SciPy (a single query: ~0.1 ms)
        indptr, items, last, lengths = self._current_arrays(query)
        row_len = np.repeat(lengths, np.diff(indptr))
        weight = (
            np.exp((last - row_len) / self.lambda_spw) if self.lambda_spw is not None else np.ones(len(last))
        )
        own = np.where(query.rows >= 0, self.user_session_[np.maximum(query.rows, 0)], -1)
        pool = neighbour_pool(
            self,
            self.__dict__["_newest_cache"],
            self.lambda_snh * _DAY if self.lambda_snh is not None else 0.0,
        )
        boost = 1.0 + self.lambda_idf * self.idf_ if self.lambda_idf is not None else np.zeros(0)
        p = self.positions_
        votes = (
            p.indptr,
            p.indices,
            p.data,
            self.lambda_inh or 0.0,
            boost,
            self.lambda_ipw or 0.0,
            self.remind,
        )
        exclude, allowed = query_filters(query, len(self.item_ids_))
        return session_knn_topk((indptr, items, weight, last, lengths, own), pool, votes, k, exclude, allowed)

    def _score(self, query: Query) -> sp.csr_matrix:
        current, lengths = self._current(query)
        own = np.where(query.rows >= 0, self.user_session_[np.maximum(query.rows, 0)], -1)
        neighbours = self._neighbours(current, lengths, own).tocoo()
        pair_row = neighbours.row.astype(np.int64)
        sims = neighbours.data
        # one row per (query, neighbour) pair: the neighbour's items at their last positions
        votes = take_rows(self.positions_, neighbours.col)
        cur = take_rows(current, pair_row)
        in_current = votes.multiply(cur > 0).tocsr()  # the neighbour's positions of shared items
        weight = np.repeat(sims, np.diff(votes.indptr))
        if self.lambda_inh is not None:
            anchor = np.asarray(in_current.max(axis=1).todense()).ravel()
            dist = np.abs(votes.data - np.repeat(anchor, np.diff(votes.indptr)))
            weight = weight * np.exp(-dist / self.lambda_inh)
        if self.lambda_idf is not None:
            weight = weight * (1.0 + self.lambda_idf * self.idf_[votes.indices])
        if self.lambda_ipw is not None:
            shared_pos = np.asarray(cur.multiply(votes > 0).max(axis=1).todense()).ravel()
            ipw = np.exp((shared_pos - lengths[pair_row]) / self.lambda_ipw)
            weight = weight * np.repeat(ipw, np.diff(votes.indptr))
        scores = sp.csr_matrix(
            (weight, (np.repeat(pair_row, np.diff(votes.indptr)), votes.indices)),
            shape=(len(query.rows), len(self.item_ids_)),
        )
        scores.sum_duplicates()
        if not self.remind:
            scores = scores - scores.multiply(current > 0)
        return _evidence(scores)


class VSTAN(STAN):
    """VSTAN (Ludewig et al., 2021): STAN plus V-SKNN's position and idf weights of the votes.

    Same parameters as :class:`STAN`; ``lambda_ipw`` and ``lambda_idf`` are on by default.
    """

    def __init__(
        self,
        n_neighbors: int = 100,
        sample_size: int = 5000,
        lambda_spw: float | None = 1.02,
        lambda_snh: float | None = 5.0,
        lambda_inh: float | None = 2.05,
        lambda_ipw: float | None = 1.02,
        lambda_idf: float | None = 5.0,
        remind: bool = True,
    ) -> None:
        super().__init__(
            n_neighbors=n_neighbors,
            sample_size=sample_size,
            lambda_spw=lambda_spw,
            lambda_snh=lambda_snh,
            lambda_inh=lambda_inh,
            lambda_ipw=lambda_ipw,
            lambda_idf=lambda_idf,
            remind=remind,
        )
