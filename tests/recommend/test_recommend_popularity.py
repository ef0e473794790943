"""Popularity (global, per category, trending) through the mixin, and its numbers by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _recommend_mixin import RecommenderTestMixin

from cartlift.errors import DataError
from cartlift.recommend import Interactions, Popularity


class TestPopularity(RecommenderTestMixin):
    cold_users_served = True

    def make_model(self) -> Popularity:
        return Popularity()


class TestPopularityPerCategory(RecommenderTestMixin):
    cold_users_served = True

    def make_model(self) -> Popularity:
        return Popularity(mode="category")


class TestTrending(RecommenderTestMixin):
    cold_users_served = True

    def make_model(self) -> Popularity:
        return Popularity(mode="trending", half_life_days=3.0)


def _frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"user_id": u, "item_id": i, "ts": pd.Timestamp(t), "event_type": "view"} for u, i, t in rows]
    )


def test_global_counts_distinct_users() -> None:
    data = Interactions.from_frame(
        _frame(
            [
                ("a", "x", "2026-01-01"),
                ("a", "x", "2026-01-02"),
                ("b", "x", "2026-01-03"),
                ("b", "y", "2026-01-03"),
            ]
        )
    )
    model = Popularity().fit(data)
    assert dict(zip(model.item_ids_, model.popularity_, strict=True)) == {"x": 2.0, "y": 1.0}
    assert model.recommend(["new"], k=2).to_lists() == [["x", "y"]]


def test_trending_weights_halve_every_half_life() -> None:
    # x: one event 2 days before the latest; y: one event at the latest time; half-life 2 days
    data = Interactions.from_frame(
        _frame([("a", "x", "2026-01-01"), ("b", "y", "2026-01-03"), ("c", "x", "2026-01-03")])
    )
    model = Popularity(mode="trending", half_life_days=2.0).fit(data)
    got = dict(zip(model.item_ids_, model.popularity_, strict=True))
    assert got["x"] == pytest.approx(0.5 + 1.0)
    assert got["y"] == pytest.approx(1.0)


def test_trending_partial_fit_equals_a_refit() -> None:
    old = _frame([("a", "x", "2026-01-01"), ("b", "y", "2026-01-02")])
    new = _frame([("c", "y", "2026-01-05"), ("a", "x", "2026-01-04")])
    folded = Popularity(mode="trending", half_life_days=2.0).fit(Interactions.from_frame(old))
    folded.partial_fit(Interactions.from_frame(new))
    refit = Popularity(mode="trending", half_life_days=2.0).fit(
        Interactions.from_frame(pd.concat([old, new]))
    )
    np.testing.assert_allclose(folded.popularity_, refit.popularity_)


def test_per_category_follows_the_users_taste(interactions: Interactions) -> None:
    model = Popularity(mode="category").fit(interactions)
    # u1's favourite category is index 1 (shirts): products p1, p5, p9, ...
    recs = model.recommend(["u1"], k=3, exclude_seen=False).to_lists()[0]
    assert all(int(p[1:]) % 4 == 1 for p in recs)


def test_per_category_needs_categories() -> None:
    data = Interactions.from_frame(_frame([("a", "x", "2026-01-01")]))
    with pytest.raises(DataError, match="catalog with categories"):
        Popularity(mode="category").fit(data)
