"""The two-stage ranker: the base-class contract, no look-ahead in its training data, a learned
order that beats its own generators on sessions with a sequential pattern, and the margin objective."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _recommend_mixin import RecommenderTestMixin

from cartlift.errors import DataError
from cartlift.recommend import (
    STAN,
    Interactions,
    ItemKNN,
    Popularity,
    Ranker,
    Recommender,
    SessionKNN,
    evaluate,
    next_item,
)


def _generators() -> list[tuple[str, Recommender]]:
    return [
        ("stan", STAN(n_neighbors=20, sample_size=100)),
        ("itemknn", ItemKNN(n_neighbors=10)),
        ("popularity", Popularity()),
    ]


class TestRanker(RecommenderTestMixin):
    cold_users_served = True

    def make_model(self) -> Ranker:
        return Ranker(models=_generators(), candidates=20, n_estimators=20, random_state=0)


def _walks(n_sessions: int, seed: int, start: float = 0.0) -> pd.DataFrame:
    """Sessions that walk a ring of 60 items: after item i comes i + 1 (70 %), i itself again (20 %)
    or a random item. Only the order says what comes next; item sets alone say little."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        item = int(rng.integers(60))
        t = start + s * 600.0
        for step in range(int(rng.integers(3, 9))):
            rows.append((f"s{seed}-{s}", f"i{item}", t + step))
            u = rng.random()
            item = (item + 1) % 60 if u < 0.7 else item if u < 0.9 else int(rng.integers(60))
    frame = pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])
    return frame.assign(user_id=frame["session_id"])


@pytest.fixture(scope="module")
def walks() -> tuple[pd.DataFrame, pd.DataFrame]:
    train = _walks(1500, seed=1)
    test = _walks(300, seed=2, start=float(train["ts"].max()) + 600)
    return train, test


def test_ranker_beats_its_generators_on_sequential_sessions(walks: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = walks
    task = next_item(train, test)
    models: dict[str, Recommender] = {
        "ranker": Ranker(models=_generators(), n_estimators=50, random_state=0),
        **dict(_generators()),
        "vsknn": SessionKNN(),
    }
    board = evaluate(models, task, metrics=["MRR@20", "HR@20"], n_bootstrap=200)
    assert board.rows[0]["model"] == "ranker"
    # the next item is (i + 1) 70 % of the time: the ranker learns that order, the others cannot
    best_single = board.rows[1]["model"]
    test_ = board.compare("ranker", best_single, "MRR@20")
    assert test_.ci_low > 0
    assert board.rows[0]["MRR@20"] > 0.6


def test_training_rows_never_see_the_future(walks: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = walks
    ranker = Ranker(models=_generators(), random_state=0, max_queries=10**6)
    cut = float(train["ts"].quantile(0.8))

    def rows_by_query(frame: pd.DataFrame) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
        got = ranker.training_frame(Interactions.from_frame(frame), rng=np.random.default_rng(0), cut=cut)
        ends = np.cumsum(got["groups"])
        return {
            (str(k[0]), int(k[1])): (got["features"][e - g : e], got["labels"][e - g : e])
            for k, g, e in zip(got["query_keys"], got["groups"], ends, strict=True)
        }

    base = rows_by_query(train)
    # later clicks: one at the end of a held-out session, and a whole new session after everything
    last = train.sort_values("ts").iloc[-1]
    end = float(train["ts"].max())
    extra = pd.DataFrame(
        {
            "session_id": [last["session_id"], "late", "late"],
            "user_id": [last["user_id"], "late", "late"],
            "item_id": ["i7", "i3", "i4"],
            "ts": [end + 1, end + 10, end + 11],
        }
    )
    grown = rows_by_query(pd.concat([train, extra], ignore_index=True))
    assert len(base) > 100
    assert set(base) < set(grown)
    for key, (features, labels) in base.items():
        np.testing.assert_array_equal(features, grown[key][0])
        np.testing.assert_array_equal(labels, grown[key][1])


def test_margin_objective_prefers_profitable_items(events: pd.DataFrame, catalog: pd.DataFrame) -> None:
    priced = catalog.assign(price=10.0, cost=9.9)
    priced.loc[priced["product_id"].isin(["p2", "p6"]), "cost"] = 1.0  # two items earn 90x more
    data = Interactions.from_frame(events, catalog=priced)
    clicks = Ranker(models=_generators(), n_estimators=20, random_state=0).fit(data)
    margin = Ranker(models=_generators(), n_estimators=20, random_state=0, objective="margin").fit(data)
    users = data.user_ids[:20]
    top_clicks = clicks.recommend(users, k=3).to_lists()
    top_margin = margin.recommend(users, k=3).to_lists()
    share = np.mean([bool({"p2", "p6"} & set(r)) for r in top_margin])
    assert share > np.mean([bool({"p2", "p6"} & set(r)) for r in top_clicks])
    assert share >= 0.75


def test_margin_objective_needs_costs(interactions: Interactions) -> None:
    with pytest.raises(DataError, match="price and cost"):
        Ranker(models=_generators(), objective="margin").fit(interactions)


def test_training_reports_its_candidate_recall(walks: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    model = Ranker(models=_generators(), n_estimators=5, random_state=0).fit(
        Interactions.from_frame(walks[0])
    )
    assert 0.5 < model.training_["candidate_recall"] <= 1.0
    assert model.training_["generators"] == ["stan", "itemknn", "popularity"]
