"""The shared test mixin every recommender's test class inherits (after implicit's
``tests/recommender_base_test.py``): the contract of the base class, checked for each algorithm."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartlift.errors import InvalidParameterError, NotFittedError
from cartlift.recommend import ExcludeItems, InStock, Interactions, Recommender

# one fitted model per test class and data set: fitting is the slow part, the checks are cheap
_FITTED: dict[tuple[str, int], Recommender] = {}


class RecommenderTestMixin:
    """Inherit and define ``make_model``; set ``cold_users_served`` when the model answers users
    it knows nothing about (popularity does, item-kNN has no evidence and returns nothing)."""

    cold_users_served = False

    def make_model(self) -> Recommender:
        raise NotImplementedError

    def fitted(self, interactions: Interactions) -> Recommender:
        key = (type(self).__name__, id(interactions))
        if key not in _FITTED:
            _FITTED[key] = self.make_model().fit(interactions)
        return _FITTED[key]

    # -- the life cycle -----------------------------------------------------------------------
    def test_fit_returns_self_and_sets_state(self, interactions: Interactions) -> None:
        model = self.make_model()
        assert model.fit(interactions) is model
        assert list(model.item_ids_) == list(interactions.item_ids)
        assert model.user_items_.shape == (interactions.n_users, interactions.n_items)

    def test_unfitted_model_refuses_to_recommend(self) -> None:
        with pytest.raises(NotFittedError, match="not fitted"):
            self.make_model().recommend(["u0"])

    def test_hyper_parameters_stored_as_given(self) -> None:
        model = self.make_model()
        params = model.get_params()
        assert type(model)(**params).get_params() == params

    @pytest.mark.parametrize("k", [0, -1, 2.5, True])
    def test_bad_k_is_refused(self, interactions: Interactions, k: object) -> None:
        with pytest.raises(InvalidParameterError, match="'k' argument"):
            self.fitted(interactions).recommend(["u0"], k=k)  # type: ignore[arg-type]

    # -- recommend ----------------------------------------------------------------------------
    def test_recommend_batch_shapes_order_and_uniqueness(self, interactions: Interactions) -> None:
        model = self.fitted(interactions)
        users = list(interactions.user_ids[:7])
        recs = model.recommend(users, k=5)
        assert recs.ids.shape == recs.scores.shape == recs.indices.shape == (7, 5)
        for row, scores in zip(recs.to_lists(), recs.scores, strict=True):
            assert len(row) == len(set(row))
            finite = scores[~np.isnan(scores)]
            assert np.all(np.diff(finite) <= 1e-12), "scores must come best first"
        assert (recs.counts > 0).all(), "known users with a history must get recommendations"

    def test_seen_items_are_excluded(self, interactions: Interactions) -> None:
        model = self.fitted(interactions)
        users = interactions.user_ids[:10]
        recs = model.recommend(users, k=10)
        seen = interactions.to_frame().groupby("user_id")["item_id"].apply(set)
        for user, row in zip(users, recs.to_lists(), strict=True):
            assert not set(row) & seen[user]

    def test_business_filters_hold(self, interactions: Interactions) -> None:
        model = self.fitted(interactions)
        stock = [f"p{i}" for i in range(0, 26, 2)]
        cart = ["p2", "p4"]
        recs = model.recommend(interactions.user_ids[:10], k=8, filter=InStock(stock) & ExcludeItems(cart))
        for row in recs.to_lists():
            assert set(row) <= set(stock) - set(cart)

    def test_cold_user_gets_a_valid_answer(self, interactions: Interactions) -> None:
        recs = self.fitted(interactions).recommend(["nobody"], k=5)
        assert recs.ids.shape == (1, 5)
        assert len(set(recs.to_lists()[0])) == recs.counts[0]
        if self.cold_users_served:
            assert recs.counts[0] == 5

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(
        k=st.integers(1, 30),
        users=st.lists(st.integers(0, 39), min_size=1, max_size=6),
        allowed=st.sets(st.integers(0, 25), min_size=0, max_size=26),
        exclude_seen=st.booleans(),
    )
    def test_invariants(
        self, interactions: Interactions, k: int, users: list[int], allowed: set[int], exclude_seen: bool
    ) -> None:
        """No duplicates, at most k, exactly min(k, candidates), never a filtered or seen item."""
        model = self.fitted(interactions)
        ids = [f"u{u}" for u in users]
        stock = [f"p{i}" for i in sorted(allowed)]
        recs = model.recommend(ids, k=k, exclude_seen=exclude_seen, filter=InStock(stock))
        rows = model._user_index.get_indexer(pd.Index(ids))
        query = model._user_queries(np.asarray(rows, np.int64))
        allowed = np.isin(model.item_ids_, stock)
        query = replace(query, exclude=query.history if exclude_seen else None, allowed=allowed)
        scores = model._dense_scores(query)
        if exclude_seen:
            scores[query.history.toarray() > 0] = -np.inf
        scores[:, ~allowed] = -np.inf
        candidates = np.isfinite(scores).sum(axis=1)
        seen = interactions.to_frame().groupby("user_id")["item_id"].apply(set)
        for user, row, count, n_cand in zip(ids, recs.to_lists(), recs.counts, candidates, strict=True):
            assert len(row) == len(set(row)) == count == min(k, n_cand)
            assert set(row) <= set(stock)
            if exclude_seen:
                assert not set(row) & seen.get(user, set())

    # -- contexts and similar items ------------------------------------------------------------
    def test_recommend_for_items_skips_the_cart(self, interactions: Interactions) -> None:
        model = self.fitted(interactions)
        carts = [["p0", "p4"], ["p1"], ["p3", "p7", "p11"]]
        recs = model.recommend_for_items(carts, k=6)
        assert len(recs) == 3
        for cart, row in zip(carts, recs.to_lists(), strict=True):
            assert not set(row) & set(cart)
            assert len(row) == len(set(row))
        single = model.recommend_for_items(["p0", "p4"], k=6)
        assert single.to_lists()[0] == recs.to_lists()[0]

    def test_unknown_items_in_a_cart_are_ignored(self, interactions: Interactions) -> None:
        model = self.fitted(interactions)
        plain = model.recommend_for_items(["p0"], k=5).to_lists()
        assert model.recommend_for_items(["p0", "no-such-item"], k=5).to_lists() == plain

    def test_similar_items_never_returns_the_item(self, interactions: Interactions) -> None:
        model = self.fitted(interactions)
        recs = model.similar_items(["p0", "p5", "unknown"], k=4)
        assert recs.ids.shape == (3, 4)
        assert "p0" not in recs.to_lists()[0]
        assert "p5" not in recs.to_lists()[1]
        assert recs.counts[2] == 0

    # -- persistence and fold-in ---------------------------------------------------------------
    def test_save_load_round_trip(self, interactions: Interactions, tmp_path: Path) -> None:
        model = self.fitted(interactions)
        path = model.save(tmp_path / "model")
        assert path.suffix == ".npz"
        loaded = Recommender.load(path)
        assert type(loaded) is type(model)
        assert loaded.get_params().keys() == model.get_params().keys()
        users = interactions.user_ids[:8]
        a, b = model.recommend(users, k=6), loaded.recommend(users, k=6)
        assert a.to_lists() == b.to_lists()
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
        carts = [["p0", "p1"], ["p2"]]
        assert (
            model.recommend_for_items(carts, 5).to_lists() == loaded.recommend_for_items(carts, 5).to_lists()
        )

    def test_partial_fit_folds_in_a_new_user(self, interactions: Interactions) -> None:
        model = self.make_model().fit(interactions)
        new = pd.DataFrame(
            {
                "user_id": ["newbie"] * 3,
                "session_id": ["newbie-s"] * 3,
                "item_id": ["p1", "p5", "p9"],
                "ts": pd.to_datetime(["2026-02-01 10:00", "2026-02-01 10:05", "2026-02-01 10:09"]),
                "event_type": ["view", "cart_add", "view"],
            }
        )
        model.partial_fit(Interactions.from_frame(new))
        assert "newbie" in model.user_ids_
        recs = model.recommend(["newbie"], k=5)
        row = recs.to_lists()[0]
        assert row, "a folded-in user with a history gets recommendations"
        assert not set(row) & {"p1", "p5", "p9"}
        # the other users are served as before
        assert model.recommend(["u3"], k=3).counts[0] > 0

    def test_fit_is_deterministic(self, interactions: Interactions) -> None:
        a = self.make_model().fit(interactions).recommend(interactions.user_ids[:6], k=5)
        b = self.make_model().fit(interactions).recommend(interactions.user_ids[:6], k=5)
        assert a.to_lists() == b.to_lists()
