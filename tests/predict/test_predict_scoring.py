"""Live scoring gives the batch model's probability at every moment; scoring one session from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cartlift.errors import DataError
from cartlift.predict import (
    FEATURE_NAMES,
    FeatureContext,
    LightGBMModel,
    LiveScorer,
    LogisticModel,
    cart_features,
    score_session,
    train_store,
)
from cartlift.store import EventStore


@pytest.fixture(scope="module")
def moments(sim_store: EventStore) -> pd.DataFrame:
    return cart_features(sim_store, moments="cart_events")


@pytest.mark.parametrize(
    "model",
    [
        LightGBMModel(n_jobs=1, random_state=0, n_estimators=60, min_child_samples=5),
        LightGBMModel(
            n_jobs=1, random_state=0, n_estimators=60, calibration="isotonic", class_weight="balanced"
        ),
        LogisticModel(calibration="sigmoid", random_state=0),
    ],
    ids=["lightgbm-platt", "lightgbm-isotonic-balanced", "logistic"],
)
def test_live_scores_equal_batch_scores_at_every_moment(
    sim_store: EventStore, moments: pd.DataFrame, model: Any
) -> None:
    model.fit(moments[list(FEATURE_NAMES)], moments["abandoned"])
    batch = model.predict_proba(moments[list(FEATURE_NAMES)])[:, 1]
    scorer = LiveScorer(model, FeatureContext.from_store(sim_store))
    wanted = {
        (s, int(q)): i for i, (s, q) in enumerate(zip(moments["session_id"], moments["seq"], strict=True))
    }
    events = sim_store.query("SELECT * FROM events ORDER BY session_id, ts, event_id")
    live = np.full(len(moments), np.nan)
    for session_id, group in events[events["session_id"].isin(moments["session_id"])].groupby("session_id"):
        state = scorer.session()
        for seq, event in enumerate(group.to_dict("records"), start=1):
            state.update(event)
            if (session_id, seq) in wanted:
                live[wanted[(session_id, seq)]] = scorer.score(state)
    np.testing.assert_allclose(live, batch, rtol=1e-12, atol=1e-15)
    assert batch.std() > 0.01  # the scores do vary


def test_scoring_from_a_feature_dict(moments: pd.DataFrame) -> None:
    model = LightGBMModel(n_jobs=1, random_state=0, n_estimators=30).fit(
        moments[list(FEATURE_NAMES)], moments["abandoned"]
    )
    scorer = LiveScorer(model)
    row = moments.iloc[0][list(FEATURE_NAMES)].to_dict()
    assert scorer.score_features(row) == pytest.approx(
        model.predict_proba(moments[list(FEATURE_NAMES)].iloc[:1])[0, 1], rel=1e-12
    )
    # absent features count as missing, and unseen categories do not break scoring
    assert 0 < scorer.score_features({"cart_value": 50.0, "device": "smart-fridge"}) < 1


def test_a_table_model_cannot_score_live_sessions() -> None:
    model = LogisticModel().fit(pd.DataFrame({"x1": np.arange(40.0)}), np.arange(40) % 2)
    with pytest.raises(DataError, match="other columns than the cart features"):
        LiveScorer(model)


def test_score_one_session_from_the_store(sim_store: EventStore, tmp_path: Path) -> None:
    trained = train_store(sim_store, tmp_path / "model", n_jobs=1)
    assert trained["rows"] > 50 and (tmp_path / "model" / "model.txt").is_file()
    session = sim_store.query(
        "SELECT session_id FROM events WHERE event_type = 'cart_add' ORDER BY session_id LIMIT 1"
    ).iloc[0, 0]
    result = score_session(sim_store, tmp_path / "model", session)
    assert result["session_id"] == session and 0 < result["p_abandon"] < 1
    assert result["p_abandon"] + result["p_purchase"] == pytest.approx(1.0)
    assert len(result["top_features"]) == 5 and set(result["features"]) == set(FEATURE_NAMES)
    with pytest.raises(DataError, match="no session 'nope'"):
        score_session(sim_store, tmp_path / "model", "nope")
    with pytest.raises(DataError, match="No model in"):
        score_session(sim_store, tmp_path / "missing", session)
