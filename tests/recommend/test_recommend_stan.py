"""STAN and VSTAN: the base-class contract, and scores equal to session-rec's published algorithm
(its per-session loops, re-typed below as the reference) on random sessions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _recommend_mixin import RecommenderTestMixin

from cartlift.errors import InvalidParameterError
from cartlift.recommend import STAN, VSTAN, Interactions


class TestSTAN(RecommenderTestMixin):
    def make_model(self) -> STAN:
        return STAN(n_neighbors=20, sample_size=50)


class TestVSTAN(RecommenderTestMixin):
    def make_model(self) -> VSTAN:
        return VSTAN(n_neighbors=20, sample_size=50)


def _reference(
    sessions: dict[int, list[int]],
    times: dict[int, float],
    current: list[int],
    *,
    k: int,
    sample_size: int,
    spw: float,
    snh_days: float,
    inh: float,
    ipw: float | None,
    idf_weight: float | None,
    now: float,
) -> dict[int, float]:
    """session-rec's STAN / VSTAN ``predict_next`` for one session, written out loop by loop."""
    item_sessions: dict[int, set[int]] = {}
    clicks: dict[int, int] = {}
    for s, items in sessions.items():
        for i in items:
            item_sessions.setdefault(i, set()).add(s)
            clicks[i] = clicks.get(i, 0) + 1
    relevant: set[int] = set()
    for i in current:
        relevant |= item_sessions.get(i, set())
    if len(relevant) > sample_size:
        relevant = set(sorted(relevant, key=lambda s: -times[s])[:sample_size])
    pos_map = {item: math.exp((p - len(current)) / spw) for p, item in enumerate(current, start=1)}
    cur = set(current)
    neighbours = []
    for s in relevant:
        n_items = set(sessions[s])
        vp = sum(pos_map[i] for i in cur if i in n_items)
        norm = math.sqrt(sum(pos_map[i] ** 2 for i in cur)) * math.sqrt(len(n_items))
        sim = vp / norm * math.exp(-(now - times[s]) / (snh_days * 86_400))
        neighbours.append((s, sim))
    neighbours = sorted(neighbours, key=lambda x: -x[1])[:k]
    scores: dict[int, float] = {}
    for s, sim in neighbours:
        n_items = sessions[s]
        pos_last: dict[int, int] = {}
        star = 0
        for p, i in enumerate(n_items, start=1):
            if i in cur:
                star = p
            pos_last[i] = p
        decay = 1.0
        if ipw is not None:
            for p, i in enumerate(current, start=1):
                if i in set(n_items):
                    decay = math.exp((p - len(current)) / ipw)
        for i in set(n_items):
            score = sim * math.exp(-abs(pos_last[i] - star) / inh)
            if idf_weight is not None:
                score += score * math.log(len(sessions) / clicks[i]) * idf_weight
            scores[i] = scores.get(i, 0.0) + score * decay
    return scores


@pytest.fixture(scope="module")
def random_sessions() -> tuple[pd.DataFrame, dict[int, list[int]], dict[int, float]]:
    rng = np.random.default_rng(7)
    rows = []
    sessions: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for s in range(300):
        start = 1_000_000.0 + s * 3_600 * rng.uniform(0.5, 2)
        length = int(rng.integers(2, 8))
        # repeats inside a session on purpose: positions must follow the last click
        items = [int(x) for x in rng.integers(0, 40, length)]
        sessions[s] = items
        for p, i in enumerate(items):
            rows.append((f"s{s}", f"i{i}", start + 60 * p))
        times[s] = start + 60 * (length - 1)
    frame = pd.DataFrame(rows, columns=["session_id", "item_id", "ts"])
    return frame.assign(user_id=frame["session_id"]), sessions, times


@pytest.mark.parametrize("variant", ["stan", "vstan"])
def test_scores_equal_session_rec(
    random_sessions: tuple[pd.DataFrame, dict[int, list[int]], dict[int, float]], variant: str
) -> None:
    frame, sessions, times = random_sessions
    params = {"n_neighbors": 15, "sample_size": 60}
    model = (STAN(**params) if variant == "stan" else VSTAN(**params)).fit(Interactions.from_frame(frame))
    now = max(times.values())
    for current in ([3], [5, 9, 5], [1, 2, 3, 4, 5, 6], [39, 0]):
        want = _reference(
            sessions,
            times,
            current,
            k=15,
            sample_size=60,
            spw=1.02,
            snh_days=5.0,
            inh=2.05,
            ipw=1.02 if variant == "vstan" else None,
            idf_weight=5.0 if variant == "vstan" else None,
            now=now,
        )
        recs = model.recommend_for_items([f"i{i}" for i in current], k=40, exclude_given=False)
        got = {int(i[1:]): s for i, s in zip(recs.to_lists()[0], recs.scores[0], strict=False)}
        assert got.keys() == {i for i, v in want.items() if v > 0}
        for item, value in got.items():
            assert value == pytest.approx(want[item], rel=1e-9)


def test_time_decay_favours_recent_neighbours() -> None:
    frame = pd.DataFrame(
        {
            "session_id": ["old", "old", "new", "new"],
            "item_id": ["a", "b", "a", "c"],
            "ts": [0.0, 1.0, 20 * 86_400.0, 20 * 86_400.0 + 1],
        }
    ).assign(user_id=lambda f: f["session_id"])
    recs = STAN().fit(Interactions.from_frame(frame)).recommend_for_items(["a"], k=2)
    # same overlap, but the session 20 days older weighs exp(-20 / 5) as much
    assert recs.to_lists()[0] == ["c", "b"]
    assert recs.scores[0][1] / recs.scores[0][0] == pytest.approx(math.exp(-4), rel=1e-6)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_neighbors": 0}, "'n_neighbors' parameter of STAN must be an int"),
        ({"lambda_spw": 0.0}, "'lambda_spw' parameter of STAN"),
        ({"lambda_idf": -1.0}, "'lambda_idf' parameter of STAN"),
    ],
)
def test_invalid_parameters(params: dict[str, object], match: str) -> None:
    frame = pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "ts": [0.0]})
    with pytest.raises(InvalidParameterError, match=match):
        STAN(**params).fit(Interactions.from_frame(frame))  # type: ignore[arg-type]
