"""The hybrid through the mixin; fallback for cold users and cold items; fusion by hand."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _recommend_mixin import RecommenderTestMixin

from cartlift.errors import DataError
from cartlift.recommend import (
    ContentBased,
    Hybrid,
    Interactions,
    ItemKNN,
    Popularity,
    Query,
    Recommender,
    SessionKNN,
)
from cartlift.recommend._base import _context_matrix


def _members() -> list[tuple[str, Recommender]]:
    return [("itemknn", ItemKNN(n_neighbors=10)), ("content", ContentBased()), ("popularity", Popularity())]


class TestHybrid(RecommenderTestMixin):
    cold_users_served = True

    def make_model(self) -> Hybrid:
        return Hybrid(models=_members(), candidates=30)


class TestWeightedHybrid(RecommenderTestMixin):
    cold_users_served = True

    def make_model(self) -> Hybrid:
        return Hybrid(models=_members(), weights=[2.0, 1.0, 0.5], method="weighted", candidates=30)


class TestDefaultHybrid(RecommenderTestMixin):
    cold_users_served = True

    def make_model(self) -> Hybrid:
        return Hybrid()


def test_cold_user_falls_back_to_popularity(interactions: Interactions) -> None:
    model = Hybrid(models=_members()).fit(interactions)
    popular = Popularity().fit(interactions).recommend(["stranger"], k=5).to_lists()
    assert model.recommend(["stranger"], k=5).to_lists() == popular


def test_cold_items_come_from_content(interactions: Interactions) -> None:
    # p24 has no interactions: only the content model knows it, as an acme shoe like p0 and p12
    model = Hybrid(models=_members(), weights=[1.0, 5.0, 1.0], method="weighted").fit(interactions)
    assert "p24" in model.recommend_for_items(["p12"], k=2).to_lists()[0]
    assert set(model.similar_items("p24", k=2).to_lists()[0]) == {"p0", "p12"}


def test_models_that_cannot_fit_are_skipped(events: pd.DataFrame) -> None:
    model = Hybrid(models=_members()).fit(Interactions.from_frame(events))
    assert model.active_ == ["itemknn", "popularity"]
    assert "product attributes" in model.skipped_["content"]
    assert model.recommend(["u0"], k=3).counts[0] == 3


def test_reciprocal_rank_fusion_by_hand(interactions: Interactions) -> None:
    a, b = ItemKNN(n_neighbors=10), Popularity()
    model = Hybrid(models=[("a", a), ("b", b)], rrf_k=10.0, candidates=4).fit(interactions)
    recs = model.recommend(["u0"], k=26)
    fused: dict[str, float] = {}
    for m in (a, b):
        for rank, item in enumerate(m.recommend(["u0"], k=4).to_lists()[0], start=1):
            fused[item] = fused.get(item, 0.0) + 1 / (10.0 + rank)
    got = dict(zip(recs.to_lists()[0], recs.scores[0], strict=False))
    assert got == pytest.approx(fused)


def test_weights_must_match_models(interactions: Interactions) -> None:
    with pytest.raises(DataError, match="one weight per model"):
        Hybrid(models=_members(), weights=[1.0]).fit(interactions)


def test_saved_hybrid_keeps_its_members(interactions: Interactions, tmp_path: Path) -> None:
    model = Hybrid(models=_members(), weights=[1.0, 2.0, 3.0]).fit(interactions)
    loaded = Recommender.load(model.save(tmp_path / "h.npz"))
    assert isinstance(loaded, Hybrid)
    assert [n for n, _ in loaded._members()] == ["itemknn", "content", "popularity"]
    assert loaded.weights == [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(
        loaded._members()[0][1].similarity_.toarray(), a := model._members()[0][1].similarity_.toarray()
    )
    assert a.shape == (26, 26)


def _queries(data: Interactions, seed: int) -> list[Query]:
    """Known users and anonymous carts, with and without their items excluded and a filter."""
    rng = np.random.default_rng(seed)
    model = Popularity().fit(data)
    users = model._user_queries(np.array([*range(min(data.n_users, 15)), -1], np.int64))
    seqs = [rng.integers(data.n_items, size=int(rng.integers(0, 5))) for _ in range(12)]
    carts = Query(np.full(12, -1, np.int64), _context_matrix(seqs, data.n_items), seqs)
    allowed = rng.random(data.n_items) < 0.7
    return [
        users,
        replace(users, exclude=users.history),
        replace(carts, exclude=carts.history, allowed=allowed),
        carts,
    ]


@pytest.mark.parametrize("method", ["rrf", "weighted"])
def test_sparse_fusion_gives_the_dense_fusion_list(interactions: Interactions, method: str) -> None:
    """`Hybrid._ranked` fuses the candidates only; it must select exactly what the dense
    fused scores select (ties by lower column)."""
    model = Hybrid(
        models=[
            ("itemknn", ItemKNN(n_neighbors=10)),
            ("vsknn", SessionKNN(n_neighbors=10)),
            ("popularity", Popularity()),
        ],
        weights=[1.0, 0.5, 0.25],
        method=method,
        candidates=8,
    ).fit(interactions)
    for query in _queries(interactions, seed=2):
        for k in (5, 12):
            idx, vals = model._ranked(query, k)
            ref_idx, ref_vals = Recommender._ranked(model, query, k)  # top_k of the dense scores
            np.testing.assert_array_equal(idx, ref_idx)
            np.testing.assert_array_equal(vals, ref_vals)
            assert (idx >= 0).any()


def _must_not_be_asked(*args: object, **kwargs: object) -> None:
    raise AssertionError("a member was asked again for a list the hybrid was given")


def test_members_asked_already_are_not_asked_again(interactions: Interactions) -> None:
    """Given the lists of models that score exactly like some of its members (the ranker's own
    V-SKNN and popularity), the hybrid reuses them and returns the same list."""
    model = Hybrid(
        models=[("itemknn", ItemKNN(n_neighbors=10)), ("vsknn", SessionKNN()), ("popularity", Popularity())],
        candidates=10,
    ).fit(interactions)
    twin = SessionKNN().fit(interactions)
    other = SessionKNN(n_neighbors=5).fit(interactions)
    pop = Popularity().fit(interactions)
    members = dict(model._members())
    assert model._scores_like(members["vsknn"], twin)
    assert not model._scores_like(members["vsknn"], other)
    assert not model._scores_like(
        members["itemknn"], ItemKNN(n_neighbors=10, include_self=True).fit(interactions)
    )
    for query in _queries(interactions, seed=4):
        expected = model._ranked(query, 15)
        known = {id(m): (m, *m._ranked(query, 12)) for m in (twin, other, pop)}
        for name in ("vsknn", "popularity"):
            members[name].__dict__["_ranked"] = _must_not_be_asked
        try:
            got = model._ranked_with(query, 15, known)
        finally:
            for name in ("vsknn", "popularity"):
                del members[name].__dict__["_ranked"]
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        # lists shorter than the hybrid's depth are not enough: the members are asked themselves
        short = {id(m): (m, *m._ranked(query, 5)) for m in (twin, pop)}
        np.testing.assert_array_equal(model._ranked_with(query, 15, short)[0], expected[0])
