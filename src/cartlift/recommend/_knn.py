"""Neighbourhood models: item-kNN (cosine with shrinkage, own kernel), user-kNN, and implicit's
item-kNN as the reference baseline."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from cartlift._params import Constraint, Interval, Options
from cartlift.recommend._base import Recommender
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._kernels import BACKENDS, knn_all_pairs, similarity_topk
from cartlift.recommend._query import Query
from cartlift.recommend._topk import sparse_row_topk

__all__ = ["ImplicitItemKNN", "ItemKNN", "UserKNN"]


def _evidence(scores: Any) -> sp.csr_matrix:
    """Sparse scores whose stored entries are the items some neighbour voted for (0: no vote)."""
    m = sp.csr_matrix(scores, dtype=np.float64)
    m.eliminate_zeros()
    return m


class ItemKNN(Recommender):
    """Item-based k-nearest neighbours with cosine similarity and shrinkage.

    The score of item ``j`` for a user with history weights ``h`` is ``sum_i h_i s_ij`` over the
    ``n_neighbors`` most similar items ``j`` of each item ``i`` in the history (Sarwar et al., 2001;
    Deshpande and Karypis, 2004).

    Parameters
    ----------
    n_neighbors : int
        Neighbours kept per item.
    shrink : float
        Shrinkage ``lambda`` in ``s_ij = x_i . x_j / (|x_i| |x_j| + lambda)``.
    backend : {"auto", "numba", "scipy"}
        Kernel for the all-pairs neighbour search (``auto``: Numba when installed).
    include_self : bool
        Keep each item as its own neighbour (similarity ``|x_i|^2 / (|x_i|^2 + lambda)``), as
        implicit's ``CosineRecommender`` does. It only matters when seen items may be returned
        (``exclude_seen=False``, the next-item protocol), where it lets the model predict a
        re-click of what is in the session.

    Attributes
    ----------
    similarity_ : csr_matrix of float32, shape (n_items, n_items)
        Row ``i`` holds the neighbours of item ``i``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "n_neighbors": [Interval(int, 1, None)],
        "shrink": [Interval(float, 0, None)],
        "backend": [Options(BACKENDS)],
        "include_self": [bool],
    }

    def __init__(
        self, n_neighbors: int = 100, shrink: float = 0.0, backend: str = "auto", include_self: bool = False
    ) -> None:
        self.n_neighbors = n_neighbors
        self.shrink = shrink
        self.backend = backend
        self.include_self = include_self

    def _fit(self, interactions: Interactions) -> None:
        similarity = knn_all_pairs(self.user_items_, self.n_neighbors, self.shrink, self.backend)
        if self.include_self:
            sq = np.asarray(self.user_items_.multiply(self.user_items_).sum(axis=0), np.float64).ravel()
            own = np.divide(sq, sq + self.shrink, out=np.zeros_like(sq), where=sq > 0)
            similarity = (similarity + sp.diags(own.astype(np.float32))).tocsr()
        self.similarity_ = similarity

    def _score(self, query: Query) -> sp.csr_matrix:
        return _evidence(query.history @ self.similarity_)

    def _similar(self, items: np.ndarray) -> sp.csr_matrix:
        return _evidence(self.similarity_[items])

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        # scores and selection in one pass, without forming history @ similarity
        got = similarity_topk(query.history, self.similarity_, k, query.exclude, query.allowed)
        return got if got is not None else super()._ranked(query, k)


class UserKNN(Recommender):
    """User-based k-nearest neighbours: items liked by the users most similar to this one.

    Neighbours are found at query time by cosine (with shrinkage) between history vectors, so new
    and folded-in users are served without refitting. The score of item ``j`` is
    ``sum_v s_uv x_vj`` over the ``n_neighbors`` most similar users ``v`` (Herlocker et al., 1999).

    Parameters
    ----------
    n_neighbors : int
        Neighbour users per query.
    shrink : float
        Shrinkage added to the cosine denominator.

    Attributes
    ----------
    norms_ : ndarray of float32, shape (n_users,)
        Euclidean norm of each user's history.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "n_neighbors": [Interval(int, 1, None)],
        "shrink": [Interval(float, 0, None)],
    }

    def __init__(self, n_neighbors: int = 50, shrink: float = 0.0) -> None:
        self.n_neighbors = n_neighbors
        self.shrink = shrink

    def _fit(self, interactions: Interactions) -> None:
        self.norms_ = _row_norms(self.user_items_)

    def _partial_fit(
        self, interactions: Interactions, item_map: np.ndarray, added: sp.csr_matrix, users: np.ndarray
    ) -> None:
        self.norms_ = _row_norms(self.user_items_)

    def _score(self, query: Query) -> sp.csr_matrix:
        dots = (query.history @ self.user_items_.T).tocsr()
        q_norm = _row_norms(query.history)
        # cosine with shrinkage, entry by entry on the stored dot products only
        rows = np.repeat(np.arange(dots.shape[0]), np.diff(dots.indptr))
        dots.data = dots.data / (q_norm[rows] * self.norms_[dots.indices] + self.shrink)
        neighbours = sparse_row_topk(dots, self.n_neighbors, exclude=query.rows)
        return _evidence(neighbours @ self.user_items_)


def _row_norms(m: sp.csr_matrix) -> np.ndarray:
    return np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel()).astype(np.float32)


class ImplicitItemKNN(Recommender):
    """implicit's ``CosineRecommender``, wrapped: the reference baseline item-kNN.

    It keeps each item as its own nearest neighbour (similarity 1), as implicit does, so with
    ``exclude_seen=False`` it re-recommends what the user just looked at.

    Parameters
    ----------
    n_neighbors : int
        implicit's ``K``.

    Attributes
    ----------
    similarity_ : csr_matrix, shape (n_items, n_items)
        implicit's similarity matrix.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {"n_neighbors": [Interval(int, 1, None)]}

    def __init__(self, n_neighbors: int = 100) -> None:
        self.n_neighbors = n_neighbors

    def _fit(self, interactions: Interactions) -> None:
        from implicit.nearest_neighbours import CosineRecommender

        model = CosineRecommender(K=self.n_neighbors, num_threads=0)
        with warnings.catch_warnings():
            # implicit converts its own normalised copy and warns about it: nothing for our users to do
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(self.user_items_.tocsr(), show_progress=False)
        self.similarity_ = sp.csr_matrix(model.similarity, dtype=np.float32)

    def _score(self, query: Query) -> sp.csr_matrix:
        return _evidence(query.history @ self.similarity_)

    def _similar(self, items: np.ndarray) -> sp.csr_matrix:
        return _evidence(self.similarity_[items])

    def _ranked(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        # scores and selection in one pass, without forming history @ similarity
        got = similarity_topk(query.history, self.similarity_, k, query.exclude, query.allowed)
        return got if got is not None else super()._ranked(query, k)
