"""Item-kNN (own kernel, both backends), user-kNN and the implicit reference, through the mixin,
plus the numbers: neighbours against a dense brute force and against implicit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from _recommend_mixin import RecommenderTestMixin

from cartlift.recommend import (
    HAS_NUMBA,
    ImplicitItemKNN,
    InStock,
    Interactions,
    ItemKNN,
    UserKNN,
    knn_all_pairs,
)


class TestItemKNN(RecommenderTestMixin):
    def make_model(self) -> ItemKNN:
        return ItemKNN(n_neighbors=10, shrink=2.0)


class TestItemKNNScipyBackend(RecommenderTestMixin):
    def make_model(self) -> ItemKNN:
        return ItemKNN(n_neighbors=10, shrink=2.0, backend="scipy")


class TestUserKNN(RecommenderTestMixin):
    def make_model(self) -> UserKNN:
        return UserKNN(n_neighbors=8)


class TestImplicitItemKNN(RecommenderTestMixin):
    def make_model(self) -> ImplicitItemKNN:
        return ImplicitItemKNN(n_neighbors=10)


def _brute_force(X: sp.csr_matrix, k: int, shrink: float) -> list[list[tuple[int, float]]]:
    """Dense cosine with shrinkage, self excluded, top k by (-similarity, column)."""
    D = X.toarray().astype(np.float64)
    dots = D.T @ D
    norms = np.sqrt((D**2).sum(axis=0))
    sims = dots / (np.outer(norms, norms) + shrink)
    out = []
    for i in range(D.shape[1]):
        cand = [(j, sims[i, j]) for j in range(D.shape[1]) if j != i and dots[i, j] > 0]
        cand.sort(key=lambda t: (-t[1], t[0]))
        out.append(cand[:k])
    return out


def _random_matrix(seed: int, shape: tuple[int, int] = (120, 40), density: float = 0.12) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    X = sp.random(*shape, density=density, random_state=rng, format="csr")
    X.data = np.round(X.data * 4) + 1  # small integers: plenty of exact ties to break
    return X


@pytest.mark.parametrize(
    "backend",
    ["scipy", pytest.param("numba", marks=pytest.mark.skipif(not HAS_NUMBA, reason="numba absent"))],
)
@pytest.mark.parametrize(("seed", "k", "shrink"), [(0, 5, 0.0), (1, 8, 3.0), (2, 50, 0.5)])
def test_neighbours_equal_dense_brute_force(backend: str, seed: int, k: int, shrink: float) -> None:
    X = _random_matrix(seed)
    S = knn_all_pairs(X, k, shrink, backend)
    expected = _brute_force(X, k, shrink)
    for i, want in enumerate(expected):
        row = S[i]
        assert row.indices.tolist() == [j for j, _ in want]
        np.testing.assert_allclose(row.data, [v for _, v in want], rtol=1e-5)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba absent")
def test_numba_and_scipy_backends_agree_on_binary_data() -> None:
    X = _random_matrix(3, (400, 90), 0.05)
    X.data[:] = 1.0
    a, b = knn_all_pairs(X, 12, 1.0, "numba"), knn_all_pairs(X, 12, 1.0, "scipy")
    assert (a.indptr == b.indptr).all() and (a.indices == b.indices).all()
    np.testing.assert_allclose(a.data, b.data, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:Method expects CSR input")
def test_neighbours_match_implicit_cosine() -> None:
    """Without shrinkage our neighbours are implicit's CosineRecommender's (minus the item itself)."""
    from implicit.nearest_neighbours import CosineRecommender

    rng = np.random.default_rng(7)
    X = sp.random(300, 60, density=0.1, random_state=rng, format="csr")
    X.data = X.data + 0.1  # continuous weights: no ties, one right answer
    ours = knn_all_pairs(X, 10, 0.0)
    ref = CosineRecommender(K=11)
    ref.fit(X.tocsr(), show_progress=False)
    theirs = ref.similarity.tocsr()
    for i in range(60):
        row = theirs[i]
        order = np.argsort(-row.data, kind="stable")
        want = [j for j in row.indices[order] if j != i][:10]
        assert ours[i].indices.tolist() == want
        np.testing.assert_allclose(ours[i].data, theirs[i, want].toarray().ravel(), rtol=1e-5)


def test_item_scores_are_weighted_neighbour_sums(interactions: Interactions) -> None:
    model = ItemKNN(n_neighbors=5).fit(interactions)
    user = 3
    history = interactions.matrix[user].toarray().ravel()
    expected = history @ model.similarity_.toarray()
    recs = model.recommend([interactions.user_ids[user]], k=3)
    for item, score in zip(recs.indices[0], recs.scores[0], strict=True):
        assert score == pytest.approx(expected[item], rel=1e-5)


def test_include_self_lets_a_session_item_come_back(interactions: Interactions) -> None:
    with_self = ItemKNN(n_neighbors=10, include_self=True).fit(interactions)
    without = ItemKNN(n_neighbors=10).fit(interactions)
    assert "p0" in with_self.recommend_for_items(["p0"], k=5, exclude_given=False).to_lists()[0]
    assert "p0" not in without.recommend_for_items(["p0"], k=5, exclude_given=False).to_lists()[0]
    # similar_items never returns the item, with or without
    assert "p0" not in with_self.similar_items("p0", k=5).to_lists()[0]


def test_user_knn_equals_brute_force(interactions: Interactions) -> None:
    model = UserKNN(n_neighbors=4).fit(interactions)
    X = interactions.matrix.toarray().astype(np.float64)
    u = 5
    norms = np.linalg.norm(X, axis=1)
    sims = X @ X[u] / (norms * norms[u])
    sims[u] = -np.inf
    neighbours = np.lexsort((np.arange(len(sims)), -sims))[:4]
    expected = sims[neighbours] @ X[neighbours]
    scores = model._dense_scores(model._user_queries(np.array([u])))[0]
    finite = np.isfinite(scores)
    np.testing.assert_allclose(scores[finite], expected[finite], rtol=1e-5)
    assert (expected[~finite] == 0).all()


def test_shrinkage_lowers_similarities_resting_on_few_users() -> None:
    X = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [0, 1, 1], [0, 1, 1]], dtype=np.float32))
    plain = knn_all_pairs(X, 2, 0.0).toarray()
    shrunk = knn_all_pairs(X, 2, 10.0).toarray()
    # item 0 shares one user with item 1: cosine 1/2 exactly, shrunk to 1 / (2 + 10)
    assert plain[0, 1] == pytest.approx(1 / 2)
    assert shrunk[0, 1] == pytest.approx(1 / 12)
    assert shrunk[1, 2] == pytest.approx(3 / (np.sqrt(4 * 3) + 10))


@pytest.mark.parametrize("model", [ItemKNN(n_neighbors=10, shrink=1.0), UserKNN(n_neighbors=8)])
def test_without_numba_the_same_recommendations(
    interactions: Interactions, model: ItemKNN | UserKNN, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NumPy/SciPy fallbacks (no Numba installed) give the lists the Numba kernels give."""
    from cartlift.recommend import _kernels

    fitted = model.fit(interactions)
    users = interactions.user_ids[:12]
    fast = fitted.recommend(users, k=8, filter=InStock([f"p{i}" for i in range(20)]))
    carts = fitted.recommend_for_items([["p0", "p3"], ["p7"]], k=5)
    monkeypatch.setattr(_kernels, "HAS_NUMBA", False)
    slow = fitted.recommend(users, k=8, filter=InStock([f"p{i}" for i in range(20)]))
    assert slow.to_lists() == fast.to_lists()
    np.testing.assert_allclose(slow.scores, fast.scores, rtol=1e-5)
    assert fitted.recommend_for_items([["p0", "p3"], ["p7"]], k=5).to_lists() == carts.to_lists()
