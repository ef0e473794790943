"""ALS and EASE through the mixin; ALS fold-in against implicit, EASE against per-column ridge."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from _recommend_mixin import RecommenderTestMixin

from cartlift.errors import DataError
from cartlift.recommend import ALS, EASE, Interactions


class TestALS(RecommenderTestMixin):
    def make_model(self) -> ALS:
        return ALS(factors=8, iterations=5, random_state=0)


class TestEASE(RecommenderTestMixin):
    def make_model(self) -> EASE:
        return EASE(l2=10.0)


def test_als_fold_in_equals_implicits_recalculate_user(interactions: Interactions) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    model = ALS(factors=6, iterations=3, alpha=4.0, regularization=0.1, random_state=1).fit(interactions)
    ref = AlternatingLeastSquares(factors=6, regularization=0.1, alpha=4.0, use_cg=False)
    ref.item_factors = model.item_factors_.copy()
    ref.user_factors = model.user_factors_.copy()
    history = sp.csr_matrix(model.user_items_[[2]])
    ours = model._fold_in(history)[0]
    theirs = np.asarray(ref.recalculate_user(2, history)).ravel()
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_ease_weights_solve_the_constrained_ridge(interactions: Interactions) -> None:
    """Column j of B is the ridge regression of item j on the other items (Steck 2019, eq. 8)."""
    l2 = 7.0
    model = EASE(l2=l2).fit(interactions)
    X = interactions.matrix.toarray().astype(np.float64)
    G = X.T @ X
    for j in (0, 3, 11):
        others = np.array([i for i in range(X.shape[1]) if i != j])
        b = np.linalg.solve(G[np.ix_(others, others)] + l2 * np.eye(len(others)), G[others, j])
        np.testing.assert_allclose(model.weights_[others, j], b, rtol=1e-3, atol=1e-5)
        assert model.weights_[j, j] == 0


def test_ease_refuses_too_many_items(interactions: Interactions) -> None:
    with pytest.raises(DataError, match="max_items"):
        EASE(max_items=5).fit(interactions)
