"""The one abstract base every recommender shares (after implicit's ``recommender_base.py``).

A subclass implements ``_fit`` (learn from :class:`Interactions`) and ``_score`` (score every
item for a batch of queries). The base does the rest the same way for all: id mapping,
batching, excluding seen items, business filters, top-k, fold-in of new users and events,
similar items, and saving without pickle.
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cartlift._params import Constraint, validate_params
from cartlift.errors import CartliftWarning, DataError, InvalidParameterError, NotFittedError
from cartlift.recommend._filters import ItemFilter
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._kernels import sparse_topk_rows
from cartlift.recommend._persist import read_npz, restore_state, state_of, write_npz
from cartlift.recommend._query import Query, Recommendations
from cartlift.recommend._topk import densify, top_k

__all__ = ["Recommender"]


def _ids(values: Any) -> np.ndarray:
    if isinstance(values, str | bytes | numbers.Number):
        values = [values]
    return np.asarray([str(v) for v in values], dtype=object)


def _check_k(k: Any, where: str) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise InvalidParameterError(f"The 'k' argument of {where} must be an int >= 1. Got {k!r} instead.")
    return int(k)


class Recommender(ABC):
    """Abstract base of cartlift's recommenders.

    Subclasses take hyper-parameters as keyword arguments of ``__init__`` (stored as given, checked
    in :meth:`fit` against ``_parameter_constraints``) and set learned state in attributes ending
    in ``_``.

    Attributes
    ----------
    user_ids_ : ndarray of str, shape (n_users,)
    item_ids_ : ndarray of str, shape (n_items,)
    user_items_ : csr_matrix, shape (n_users, n_items)
        Interaction weights: what "seen" means, and the history item-based models score from.
    seq_indptr_, seq_items_ : ndarray
        Each user's latest session, oldest item first (the context of session-based models).
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {}
    _registry: ClassVar[dict[str, type[Recommender]]] = {}
    needs_catalog: ClassVar[bool] = False
    """True for models that need product attributes (content-based)."""
    trained_on_: str | None = None
    """The store the model learned from (`cartlift.store.store_identity`), saved with it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not inspect.isabstract(cls):
            Recommender._registry[cls.__name__] = cls

    # -- parameters ----------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters, as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Change hyper-parameters (takes effect at the next :meth:`fit`)."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise InvalidParameterError(
                    f"{type(self).__name__} has no parameter {name!r}; valid parameters: {valid}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, interactions: Interactions) -> Self:
        """Learn from interactions.

        Parameters
        ----------
        interactions : Interactions
            Events with their weights (see :meth:`Interactions.from_store`).

        Returns
        -------
        self
        """
        validate_params(self)
        if not isinstance(interactions, Interactions):
            raise DataError(
                f"fit expects an Interactions (see Interactions.from_frame); got {type(interactions).__name__}."
            )
        if interactions.n_items == 0:
            raise DataError("No interactions to learn from: the data has no items with a positive weight.")
        self._drop_caches()
        self.user_ids_ = np.asarray(interactions.user_ids, dtype=str)
        self.item_ids_ = np.asarray(interactions.item_ids, dtype=str)
        self.user_items_ = interactions.matrix.astype(np.float32)
        indptr, items = interactions.sequences
        last = interactions.last_session
        starts = np.where(last >= 0, indptr[np.maximum(last, 0)], 0)
        ends = np.where(last >= 0, indptr[np.maximum(last, 0) + 1], 0)
        lengths = ends - starts
        self.seq_indptr_ = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # position p of the output reads items[starts[u] + (p - seq_indptr_[u])]
        gather = np.arange(self.seq_indptr_[-1]) + np.repeat(starts - self.seq_indptr_[:-1], lengths)
        self.seq_items_ = items[gather].astype(np.int32)
        self._fit(interactions)
        return self

    @abstractmethod
    def _fit(self, interactions: Interactions) -> None:
        """Learn the model's state from ``interactions`` (ids and history are already set)."""

    def partial_fit(self, interactions: Interactions) -> Self:
        """Fold in new users and new events without a full retrain.

        New users are added; their (and known users') histories grow by the new events, so
        history-based models (item-kNN, EASE, content, rules, session-kNN) serve them at once.
        Models with user state (ALS, popularity) update it too; similarities and item factors
        stay as fitted until the next :meth:`fit`. Events on items the model does not know are
        dropped with a :class:`~cartlift.errors.CartliftWarning`.

        Parameters
        ----------
        interactions : Interactions
            The new events only.
        """
        if not hasattr(self, "item_ids_"):
            return self.fit(interactions)
        item_map = pd.Index(self.item_ids_).get_indexer(pd.Index(interactions.item_ids))
        known = item_map[interactions.item] >= 0
        if not known.all():
            warnings.warn(
                f"partial_fit dropped {int((~known).sum())} events on items the model was not fitted on; "
                "fit again to learn new items.",
                CartliftWarning,
                stacklevel=2,
            )
        new_users = np.setdiff1d(interactions.user_ids, self.user_ids_)
        if len(new_users):
            self.user_ids_ = np.concatenate([self.user_ids_, new_users.astype(str)])
            self._drop_caches()
        user_map = self._user_index.get_indexer(pd.Index(interactions.user_ids))
        rows = user_map[interactions.user[known]]
        cols = item_map[interactions.item[known]]
        added = sp.csr_matrix(
            (interactions.weight[known], (rows, cols)), shape=(len(self.user_ids_), len(self.item_ids_))
        )
        history = self.user_items_
        if history.shape[0] < len(self.user_ids_):
            history = sp.vstack(
                [history, sp.csr_matrix((len(self.user_ids_) - history.shape[0], history.shape[1]))]
            ).tocsr()
        self.user_items_ = (history + added).astype(np.float32).tocsr()
        self._update_sequences(interactions, user_map, item_map)
        self._partial_fit(interactions, item_map, added, np.unique(rows))
        return self

    def _partial_fit(  # noqa: B027
        self, interactions: Interactions, item_map: np.ndarray, added: sp.csr_matrix, users: np.ndarray
    ) -> None:
        """Update model state after new events (histories are already updated).

        ``item_map`` maps the new data's items to the model's columns (-1: unknown), ``added`` holds
        the new weights in the model's rows and columns, ``users`` are the rows touched.
        """

    def _update_sequences(
        self, interactions: Interactions, user_map: np.ndarray, item_map: np.ndarray
    ) -> None:
        indptr, items = interactions.sequences
        seqs = [
            self.seq_items_[self.seq_indptr_[u] : self.seq_indptr_[u + 1]]
            for u in range(len(self.seq_indptr_) - 1)
        ]
        seqs += [np.array([], np.int32)] * (len(self.user_ids_) - len(seqs))
        for u_new, s in enumerate(interactions.last_session):
            if s >= 0:
                mapped = item_map[items[indptr[s] : indptr[s + 1]]]
                seqs[user_map[u_new]] = mapped[mapped >= 0].astype(np.int32)
        self.seq_indptr_ = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
        self.seq_items_ = np.concatenate(seqs).astype(np.int32) if seqs else np.array([], np.int32)

    # -- scoring -------------------------------------------------------------------------------
    @abstractmethod
    def _score(self, query: Query) -> np.ndarray | sp.csr_matrix:
        """Scores of every item for each query row, shape (n, n_items).

        Either a new, writable dense array where ``-inf`` marks items the model has no evidence
        for, or a CSR matrix whose stored entries are the only candidates (neighbourhood models:
        a few thousand candidates out of the catalogue, selected without densifying).
        """

    def _similar(self, items: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """Similarity of every item to each of ``items``, shape (len(items), n_items).

        By default: the scores for a one-item anonymous context.
        """
        history = sp.csr_matrix(
            (np.ones(len(items), np.float32), (np.arange(len(items)), items)),
            shape=(len(items), len(self.item_ids_)),
        )
        return self._score(Query(np.full(len(items), -1), history, [np.array([i]) for i in items]))

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_ids_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call fit(interactions) first."
            )

    def _user_rows(self, users: np.ndarray) -> np.ndarray:
        """Row of each user id (-1: unknown), by a dict: pandas indexing costs ~0.3 ms a call."""
        return self._positions("_user_lookup_cache", self.user_ids_, users)

    def _item_rows(self, items: np.ndarray) -> np.ndarray:
        """Column of each item id (-1: unknown), by a dict, as :meth:`_user_rows`."""
        return self._positions("_item_lookup_cache", self.item_ids_, items)

    def _positions(self, cache: str, known: np.ndarray, ids: np.ndarray) -> np.ndarray:
        lookup = self.__dict__.get(cache)
        if lookup is None or len(lookup) != len(known):
            lookup = {u: i for i, u in enumerate(known.tolist())}
            self.__dict__[cache] = lookup
        return np.fromiter((lookup.get(u, -1) for u in ids), np.int64, count=len(ids))

    @property
    def _user_index(self) -> pd.Index:
        cached = self.__dict__.get("_user_index_cache")
        if cached is None or len(cached) != len(self.user_ids_):
            cached = pd.Index(self.user_ids_.astype(object))
            self.__dict__["_user_index_cache"] = cached
        return cached

    @property
    def _item_index(self) -> pd.Index:
        cached = self.__dict__.get("_item_index_cache")
        if cached is None or len(cached) != len(self.item_ids_):
            cached = pd.Index(self.item_ids_.astype(object))
            self.__dict__["_item_index_cache"] = cached
        return cached

    def _drop_caches(self) -> None:
        for name in ("_user_index_cache", "_item_index_cache", "_user_lookup_cache", "_item_lookup_cache"):
            self.__dict__.pop(name, None)

    def _allowed(self, filter: ItemFilter | None, row_ids: np.ndarray | None) -> np.ndarray | None:
        if filter is None:
            return None
        return np.asarray(filter.allowed(self.item_ids_, row_ids), bool)

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` columns and scores per query row, after exclusions and filters."""
        scores = self._score(query)
        if sp.issparse(scores):
            # sparse scores (neighbourhood models): select among the stored entries only
            return sparse_topk_rows(sp.csr_matrix(scores), k, query.exclude, query.allowed)
        return top_k(query.mask(scores), k)

    def _dense_scores(self, query: Query) -> np.ndarray:
        """``_score`` as a dense array, ``-inf`` where a sparse score stores nothing."""
        return densify(self._score(query))

    def _pack(self, idx: np.ndarray, vals: np.ndarray) -> Recommendations:
        ids = np.full(idx.shape, None, dtype=object)
        ok = idx >= 0
        ids[ok] = self.item_ids_[idx[ok]].astype(object)
        return Recommendations(ids=ids, scores=vals, indices=idx)

    def _user_queries(self, rows: np.ndarray) -> Query:
        history = take_rows(self.user_items_, rows)
        seqs = [
            self.seq_items_[self.seq_indptr_[r] : self.seq_indptr_[r + 1]]
            if r >= 0
            else np.array([], np.int32)
            for r in rows
        ]
        return Query(rows, history, seqs)

    def recommend(
        self,
        user_ids: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        filter: ItemFilter | None = None,
        batch_size: int = 1024,
    ) -> Recommendations:
        """Top ``k`` items for each user, batch first.

        Parameters
        ----------
        user_ids : id or sequence of ids, length n
            Users to serve; ids the model has not seen are cold users (empty history).
        k : int
            Items per user.
        exclude_seen : bool
            Never return items the user already interacted with.
        filter : ItemFilter, optional
            Business filter (:class:`InStock`, :class:`InCategory`, :class:`ExcludeItems` ...).
        batch_size : int
            Users scored at once (memory is ``batch_size x n_items`` scores).

        Returns
        -------
        Recommendations
            ``ids`` and ``scores`` of shape (n, k), best first.
        """
        self._check_fitted()
        k = _check_k(k, "recommend")
        users = _ids(user_ids)
        rows = self._user_rows(users)
        idx = np.empty((len(users), k), np.int64)
        vals = np.empty((len(users), k))
        for start in range(0, len(users), max(1, batch_size)):
            sl = slice(start, start + batch_size)
            query = self._user_queries(rows[sl])
            query = replace(
                query,
                exclude=query.history if exclude_seen else None,
                allowed=self._allowed(filter, users[sl]),
            )
            idx[sl], vals[sl] = self._ranked(query, k)
        return self._pack(idx, vals)

    def recommend_for_items(
        self,
        item_ids: Any,
        k: int = 10,
        *,
        exclude_given: bool = True,
        filter: ItemFilter | None = None,
        batch_size: int = 1024,
    ) -> Recommendations:
        """Top ``k`` items for a cart or session context, for anonymous visitors too.

        Parameters
        ----------
        item_ids : sequence of ids, or sequence of sequences of ids
            One context (the items in the cart or viewed in the session, oldest first), or a
            batch of contexts. Unknown items are ignored.
        k : int
            Items per context.
        exclude_given : bool
            Never return an item of the context itself.
        filter : ItemFilter, optional
            Business filter.
        batch_size : int
            Contexts scored at once.

        Returns
        -------
        Recommendations
            One row per context.
        """
        self._check_fitted()
        k = _check_k(k, "recommend_for_items")
        contexts = _contexts(item_ids)
        mapped = [self._item_rows(c) for c in contexts]
        seqs = [m[m >= 0].astype(np.int32) for m in mapped]
        idx = np.empty((len(seqs), k), np.int64)
        vals = np.empty((len(seqs), k))
        for start in range(0, len(seqs), max(1, batch_size)):
            part = seqs[start : start + batch_size]
            history = _context_matrix(part, len(self.item_ids_))
            query = Query(
                np.full(len(part), -1, np.int64),
                history,
                part,
                exclude=history if exclude_given else None,
                allowed=self._allowed(filter, None),
            )
            sl = slice(start, start + len(part))
            idx[sl], vals[sl] = self._ranked(query, k)
        return self._pack(idx, vals)

    def similar_items(
        self, item_ids: Any, k: int = 10, *, filter: ItemFilter | None = None
    ) -> Recommendations:
        """The ``k`` items most similar to each given item (never the item itself).

        Parameters
        ----------
        item_ids : id or sequence of ids, length n
            Items; an unknown item gets an empty row.
        k : int
            Neighbours per item.
        filter : ItemFilter, optional
            Business filter.

        Returns
        -------
        Recommendations
            One row per given item.
        """
        self._check_fitted()
        k = _check_k(k, "similar_items")
        pos = self._item_index.get_indexer(pd.Index(_ids(item_ids))).astype(np.int64)
        known = pos >= 0
        scores = np.full((len(pos), len(self.item_ids_)), -np.inf)
        if known.any():
            scores[known] = densify(self._similar(pos[known]))
        scores[np.flatnonzero(known), pos[known]] = -np.inf
        allowed = self._allowed(filter, None)
        if allowed is not None:
            scores[~np.broadcast_to(allowed, scores.shape)] = -np.inf
        idx, vals = top_k(scores, k)
        return self._pack(idx, vals)

    # -- persistence ---------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return state_of(self)

    def _set_state(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        restore_state(self, scalars, arrays)

    def _json_params(self) -> dict[str, Any]:
        return self.get_params()

    def save(self, path: str | Path) -> Path:
        """Save the fitted model to one ``.npz`` file (arrays + a JSON header; no pickle).

        Returns
        -------
        Path
            The file written (``.npz`` is appended when missing).
        """
        self._check_fitted()
        scalars, arrays = self._get_state()
        meta = {"class": type(self).__name__, "params": self._json_params(), "state": scalars}
        return write_npz(path, meta, arrays)

    @classmethod
    def _from_saved(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Recommender:
        model = cls(**meta["params"])
        model._set_state(meta["state"], arrays)
        return model

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model saved by :meth:`save` (any recommender class; the file says which)."""
        meta, arrays = read_npz(path)
        target = Recommender._registry.get(meta.get("class", ""))
        if target is None:
            raise DataError(f"{str(path)!r} holds an unknown model class {meta.get('class')!r}.")
        if not issubclass(target, cls):
            raise DataError(f"{str(path)!r} holds a {target.__name__}, not a {cls.__name__}.")
        return target._from_saved(meta, arrays)


def take_rows(m: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """Rows of a CSR matrix (an empty row for ``-1``), gathered directly: SciPy's fancy indexing
    costs ~0.1 ms a call, most of a single-user recommendation."""
    indptr, gather = row_entries(m, rows)
    return sp.csr_matrix((m.data[gather], m.indices[gather], indptr), shape=(len(rows), m.shape[1]))


def row_entries(m: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``indptr`` of rows ``rows`` of a CSR matrix (-1: an empty row) and the positions of
    their entries in ``m.data`` / ``m.indices``."""
    rows = np.asarray(rows, np.int64)
    known = rows >= 0
    safe = np.where(known, rows, 0)
    starts = np.where(known, m.indptr[safe], 0)
    lengths = np.where(known, m.indptr[safe + 1] - starts, 0)
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return indptr, np.arange(indptr[-1]) + np.repeat(starts - indptr[:-1], lengths)


def _contexts(item_ids: Any) -> list[np.ndarray]:
    """One context (sequence of ids) or a batch of them, as a list of id arrays."""
    if isinstance(item_ids, str | bytes | numbers.Number):
        return [_ids([item_ids])]
    items = list(item_ids)
    if items and all(isinstance(c, Iterable) and not isinstance(c, str | bytes) for c in items):
        return [_ids(list(c)) for c in items]
    return [_ids(items)]


def _context_matrix(seqs: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Ones on each context's distinct items, columns sorted: the canonical CSR matrix, built
    from its arrays (the COO route and its duplicate summing cost ~0.1 ms, a tenth of a cart's
    recommendation)."""
    lengths = np.array([len(s) for s in seqs], np.int64)
    rows = np.repeat(np.arange(len(seqs), dtype=np.int64), lengths)
    cols = np.concatenate(seqs).astype(np.int64) if len(seqs) else np.array([], np.int64)
    keys = np.unique(rows * n_items + cols)
    indptr = np.zeros(len(seqs) + 1, np.int64)
    np.cumsum(np.bincount(keys // n_items, minlength=len(seqs)), out=indptr[1:])
    index = np.int32 if max(n_items, len(keys)) < np.iinfo(np.int32).max else np.int64
    m = sp.csr_matrix(
        (np.ones(len(keys), np.float32), (keys % n_items).astype(index), indptr.astype(index)),
        shape=(len(seqs), n_items),
    )
    m.has_sorted_indices = True
    m.has_canonical_format = True
    return m
