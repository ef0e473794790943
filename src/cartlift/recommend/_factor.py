"""Latent-factor and linear models: ALS (through implicit) and EASE (closed form)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from cartlift._params import Constraint, Interval
from cartlift._random import RandomState, check_random_state
from cartlift.errors import DataError
from cartlift.recommend._base import Recommender, row_entries
from cartlift.recommend._interactions import Interactions
from cartlift.recommend._query import Query

__all__ = ["ALS", "EASE"]


class ALS(Recommender):
    """Implicit-feedback matrix factorisation by alternating least squares, fitted by ``implicit``.

    Confidence is ``c_ui = alpha * r_ui`` on observed pairs (implicit's convention; Hu, Koren and
    Volinsky, 2008). Users outside the fit (anonymous carts, folded-in users) get factors by one
    least-squares step against the fixed item factors:

    .. math:: x_u = (Y^T Y + \\lambda I + \\sum_{i \\in u} (c_{ui} - 1) y_i y_i^T)^{-1}
              \\sum_{i \\in u} c_{ui} y_i

    Parameters
    ----------
    factors : int
        Latent dimensions.
    regularization : float
        L2 penalty ``lambda``.
    alpha : float
        Confidence scale applied to the interaction weights.
    iterations : int
        ALS sweeps.
    random_state : int, Generator or None
        Seed of the initial factors.

    Attributes
    ----------
    user_factors_ : ndarray of float32, shape (n_users, factors)
    item_factors_ : ndarray of float32, shape (n_items, factors)
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "factors": [Interval(int, 1, None)],
        "regularization": [Interval(float, 0, None)],
        "alpha": [Interval(float, 0, None, closed="neither")],
        "iterations": [Interval(int, 1, None)],
        "random_state": [None, Interval(int, 0, None), np.random.Generator],
    }

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        random_state: RandomState = None,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state

    def _fit(self, interactions: Interactions) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        seed = int(check_random_state(self.random_state).integers(2**31 - 1))
        # implicit runs its own threads; a multi-threaded BLAS underneath only fights them (and
        # implicit checks for it when the model is built)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=seed,
            )
            model.fit(self.user_items_.tocsr(), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, np.float32)
        self.item_factors_ = np.asarray(model.item_factors, np.float32)

    def _gram(self) -> tuple[np.ndarray, np.ndarray]:
        """The item factors in float64 and ``Y^T Y + lambda I``, kept while the factors stay the same
        object: forming them took ~1 ms of every anonymous query."""
        cached = self.__dict__.get("_gram_cache")
        if cached is None or cached[0] is not self.item_factors_ or cached[1] != self.regularization:
            Y = self.item_factors_.astype(np.float64)
            cached = (
                self.item_factors_,
                self.regularization,
                Y,
                Y.T @ Y + self.regularization * np.eye(Y.shape[1]),
            )
            self.__dict__["_gram_cache"] = cached
        return cached[2], cached[3]

    def _fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        return self._fold_in_rows(history.indptr, history.indices, history.data)

    def _fold_in_rows(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> np.ndarray:
        """Factors of the rows given as CSR arrays (without building the matrix)."""
        Y, base = self._gram()
        out = np.zeros((len(indptr) - 1, Y.shape[1]), np.float32)
        for r in range(len(indptr) - 1):
            cols = indices[indptr[r] : indptr[r + 1]]
            if len(cols) == 0:
                continue
            conf = self.alpha * data[indptr[r] : indptr[r + 1]].astype(np.float64)
            Yi = Y[cols]
            A = base + (Yi.T * (conf - 1.0)) @ Yi
            out[r] = np.linalg.solve(A, Yi.T @ conf)
        return out

    def _partial_fit(
        self, interactions: Interactions, item_map: np.ndarray, added: sp.csr_matrix, users: np.ndarray
    ) -> None:
        grow = len(self.user_ids_) - len(self.user_factors_)
        if grow > 0:
            self.user_factors_ = np.vstack([self.user_factors_, np.zeros((grow, self.factors), np.float32)])
        if len(users):
            self.user_factors_[users] = self._fold_in(self.user_items_[users])

    def _score(self, query: Query) -> np.ndarray:
        known = query.rows >= 0
        factors = np.empty((len(query.rows), self.item_factors_.shape[1]), np.float32)
        factors[known] = self.user_factors_[query.rows[known]]
        history = query.history.tocsr()
        if not known.all():
            # the unknown rows' entries, read in place (`take_rows` would build a matrix)
            indptr, gather = row_entries(history, np.flatnonzero(~known))
            factors[~known] = self._fold_in_rows(indptr, history.indices[gather], history.data[gather])
        scores = (factors @ self.item_factors_.T).astype(np.float64)
        # no history at all: the factors are zero and every score ties at 0, which says nothing
        scores[(np.diff(history.indptr) == 0) & ~known] = -np.inf
        return scores

    def _similar(self, items: np.ndarray) -> np.ndarray:
        Y = self.item_factors_.astype(np.float64)
        norms = np.linalg.norm(Y, axis=1)
        norms[norms == 0] = 1.0
        return (Y[items] / norms[items, None]) @ (Y / norms[:, None]).T


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder: a closed-form item-item linear model (Steck, 2019).

    .. math:: P = (X^T X + \\lambda I)^{-1}, \\quad B_{ij} = -P_{ij} / P_{jj}, \\quad B_{jj} = 0

    and the scores of a user with history ``h`` are ``h B``. Cost is one dense
    ``n_items x n_items`` inverse, so it suits catalogues up to ``max_items``.

    Parameters
    ----------
    l2 : float
        Ridge penalty ``lambda``.
    max_items : int
        Refuse larger catalogues (memory is ``8 n_items^2`` bytes during the fit).

    Attributes
    ----------
    weights_ : ndarray of float32, shape (n_items, n_items)
        ``B``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "l2": [Interval(float, 0, None, closed="neither")],
        "max_items": [Interval(int, 1, None)],
    }

    def __init__(self, l2: float = 500.0, max_items: int = 10_000) -> None:
        self.l2 = l2
        self.max_items = max_items

    def _fit(self, interactions: Interactions) -> None:
        n = len(self.item_ids_)
        if n > self.max_items:
            raise DataError(
                f"EASE needs a dense {n} x {n} inverse ({8 * n * n / 1e9:.1f} GB); max_items is "
                f"{self.max_items}. Raise max_items if the memory is there, or use ItemKNN."
            )
        X = self.user_items_
        gram = (X.T @ X).toarray().astype(np.float64)
        gram[np.diag_indices(n)] += self.l2
        P = np.linalg.inv(gram)
        B = -P / np.diag(P)[None, :]
        B[np.diag_indices(n)] = 0.0
        self.weights_ = B.astype(np.float32)

    def _score(self, query: Query) -> np.ndarray:
        scores = np.asarray(query.history @ self.weights_, np.float64)
        scores[~np.asarray(query.history.getnnz(axis=1) > 0)] = -np.inf
        return scores
