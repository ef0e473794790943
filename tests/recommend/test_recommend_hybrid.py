"""The hybrid through the mixin; fallback for cold users and cold items; fusion by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _recommend_mixin import RecommenderTestMixin

from cartlift.errors import DataError
from cartlift.recommend import ContentBased, Hybrid, Interactions, ItemKNN, Popularity, Recommender


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
