"""Session-kNN (SKNN, V-SKNN) through the mixin, by hand on three sessions, and the yoochoose
leaderboard where it must beat implicit's item-kNN and popularity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _recommend_mixin import RecommenderTestMixin

from cartlift.recommend import (
    Interactions,
    ItemKNN,
    SessionKNN,
    evaluate,
    make_model,
    next_item,
    read_yoochoose,
)


class TestSKNN(RecommenderTestMixin):
    def make_model(self) -> SessionKNN:
        return SessionKNN(variant="sknn", n_neighbors=20, sample_size=50)


class TestVSKNN(RecommenderTestMixin):
    def make_model(self) -> SessionKNN:
        return SessionKNN(variant="vsknn", n_neighbors=20, sample_size=50)


@pytest.fixture
def three_sessions() -> Interactions:
    rows = [
        ("s1", "a", 1),
        ("s1", "b", 1),
        ("s2", "a", 2),
        ("s2", "c", 2),
        ("s3", "b", 3),
        ("s3", "c", 3),
        ("s3", "d", 3),
    ]
    frame = pd.DataFrame(rows, columns=["session_id", "item_id", "ts"]).assign(
        user_id=lambda f: f["session_id"]
    )
    return Interactions.from_frame(frame)


def _scores(model: SessionKNN, context: list[str]) -> dict[str, float]:
    recs = model.recommend_for_items(context, k=10, exclude_given=False)
    return {i: s for i, s in zip(recs.to_lists()[0], recs.scores[0], strict=False)}


def test_sknn_by_hand(three_sessions: Interactions) -> None:
    got = _scores(SessionKNN(variant="sknn").fit(three_sessions), ["a"])
    # s1 and s2 share "a" with the context: cosine 1 / sqrt(1 * 2) each; s3 shares nothing
    assert got == pytest.approx({"a": 2 / math.sqrt(2), "b": 1 / math.sqrt(2), "c": 1 / math.sqrt(2)})


def test_only_the_most_recent_sessions_are_sampled(three_sessions: Interactions) -> None:
    got = _scores(SessionKNN(variant="sknn", sample_size=1).fit(three_sessions), ["a"])
    assert got == pytest.approx({"a": 1 / math.sqrt(2), "c": 1 / math.sqrt(2)})


def test_vsknn_by_hand(three_sessions: Interactions) -> None:
    got = _scores(SessionKNN(variant="vsknn", idf=False).fit(three_sessions), ["b", "a"])
    q = math.sqrt(0.5**2 + 1.0)  # b is the first of two clicks (1/2), a the latest (1)
    s1, s2, s3 = 1.5 / (q * math.sqrt(2)), 1.0 / (q * math.sqrt(2)), 0.5 / (q * math.sqrt(3))
    assert got == pytest.approx({"a": s1 + s2, "b": s1 + s3, "c": s2 + s3, "d": s3})


def test_new_sessions_join_the_pool_by_partial_fit(three_sessions: Interactions) -> None:
    model = SessionKNN(variant="sknn").fit(three_sessions)
    assert "e" not in _scores(model, ["d"])
    new = pd.DataFrame(
        {"user_id": ["s4", "s4"], "session_id": ["s4", "s4"], "item_id": ["d", "a"], "ts": [4, 4]}
    )
    model.partial_fit(Interactions.from_frame(new))
    assert set(_scores(model, ["d"])) == {"a", "b", "c", "d"}


@pytest.mark.slow
def test_session_knn_beats_implicit_item_knn_and_popularity_on_yoochoose(shared_data: Path) -> None:
    """session-rec's RSC15 100k sample, train_full -> test, next-item: HR@20 and MRR@20."""
    folder = shared_data / "yoochoose_rsc15_100k"
    task = next_item(
        read_yoochoose(folder / "yoochoose-clicks-100k_train_full.txt"),
        read_yoochoose(folder / "yoochoose-clicks-100k_test.txt"),
    )
    names = ["vsknn", "implicit-itemknn", "popularity"]
    models = {n: make_model(n) for n in names}
    # our item-kNN with implicit's convention (the item is its own neighbour) must score as implicit
    models["itemknn-self"] = ItemKNN(include_self=True)
    board = evaluate(models, task, metrics=["HR@20", "MRR@20"], n_bootstrap=200)
    rows = {r["model"]: r for r in board.rows}
    for metric in ("HR@20", "MRR@20"):
        assert rows["itemknn-self"][metric] == pytest.approx(rows["implicit-itemknn"][metric], abs=0.003)
    for metric in ("HR@20", "MRR@20"):
        assert rows["vsknn"][metric] > rows["implicit-itemknn"][metric] > rows["popularity"][metric]
        test = board.compare("vsknn", "implicit-itemknn", metric)
        assert test.ci_low > 0 and test.p_value < 0.01, test
    assert board.info["queries"] == 10152
    assert np.isclose(rows["vsknn"]["HR@20"], 0.675, atol=0.01)


def test_nearest_sessions_equals_a_loop_per_query() -> None:
    """The vectorised neighbour lookup V-SKNN and STAN share keeps, per query, the sample_size most
    recent overlapping sessions (never its own) and of those the n_neighbors most similar."""
    import scipy.sparse as sp

    from cartlift.recommend._session import nearest_sessions

    rng = np.random.default_rng(0)
    n, n_sessions = 40, 300
    dots = sp.random(n, n_sessions, density=0.3, random_state=1, format="csr")
    dots.data = np.round(dots.data * 5) / 5  # ties in the overlap
    time = rng.permutation(n_sessions).astype(np.float64)  # distinct times: the sample is unambiguous
    size = rng.integers(1, 9, n_sessions).astype(np.float64)
    own = rng.integers(-1, n_sessions, n)
    got = nearest_sessions(dots, own, time, 30, 7, lambda r, c, v: v / np.sqrt(size[c]) + 1e-9 * c).toarray()
    for r in range(n):
        row = dots.getrow(r)
        pairs = [(c, v) for c, v in zip(row.indices, row.data, strict=True) if c != own[r] and v > 0]
        pairs = sorted(pairs, key=lambda p: -time[p[0]])[:30]
        sims = sorted(((v / math.sqrt(size[c]) + 1e-9 * c, c) for c, v in pairs), reverse=True)[:7]
        expected = np.zeros(n_sessions)
        for sim, c in sims:
            expected[c] = sim
        np.testing.assert_allclose(got[r], expected)
