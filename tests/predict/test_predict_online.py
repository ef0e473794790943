"""Online learning follows a drifting store; the drift check fires on drift and stays quiet without."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cartlift.errors import DataError, InvalidParameterError, NotFittedError
from cartlift.predict import (
    FEATURE_NAMES,
    DriftMonitor,
    LogisticModel,
    OnlineLogisticModel,
    cart_features,
    population_stability_index,
    roc_auc,
)
from cartlift.store import EventStore


def stream(n: int, seed: int, *, flip: bool = False, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Sessions whose outcome depends on x1 (sign flipped after a concept drift) and the device."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(shift, 1.0, n)
    x2 = rng.normal(size=n)
    device = rng.choice(["mobile", "desktop"], n)
    z = (-1.5 if flip else 1.5) * x1 + 0.5 * x2 + 0.8 * (device == "desktop") - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "device": device}), y


def test_partial_fit_session_by_session_reaches_the_batch_model() -> None:
    X, y = stream(3000, 0)
    X_test, y_test = stream(3000, 1)
    online = OnlineLogisticModel(random_state=0).partial_fit(X.iloc[:200], y[:200])
    for i in range(200, 3000, 5):  # a few finished sessions at a time
        online.partial_fit(X.iloc[i : i + 5], y[i : i + 5])
    batch = LogisticModel().fit(X, y)
    auc_online = roc_auc(y_test, online.predict_proba(X_test)[:, 1])
    auc_batch = roc_auc(y_test, batch.predict_proba(X_test)[:, 1])
    assert auc_online >= auc_batch - 0.01
    assert online.n_seen_ == 3000


def test_the_online_model_follows_a_concept_drift_that_a_frozen_model_misses() -> None:
    X_old, y_old = stream(2000, 2)
    X_new, y_new = stream(1500, 3, flip=True)
    X_test, y_test = stream(2000, 4, flip=True)
    frozen = LogisticModel().fit(X_old, y_old)
    online = OnlineLogisticModel(random_state=0).fit(X_old, y_old)
    for i in range(0, len(y_new), 10):
        online.partial_fit(X_new.iloc[i : i + 10], y_new[i : i + 10])
    assert roc_auc(y_test, frozen.predict_proba(X_test)[:, 1]) < 0.4
    assert roc_auc(y_test, online.predict_proba(X_test)[:, 1]) > 0.75


def _monitor(seed: int = 5) -> tuple[DriftMonitor, LogisticModel]:
    X, y = stream(4000, seed)
    model = LogisticModel().fit(X.iloc[:2000], y[:2000])
    p = model.predict_proba(X.iloc[2000:])[:, 1]
    return DriftMonitor(window=800, min_rows=200).fit(X.iloc[2000:], y[2000:], p), model


def test_no_drift_no_retrain() -> None:
    monitor, model = _monitor()
    X, y = stream(800, 6)
    report = monitor.update(X, y, model.predict_proba(X)[:, 1]).check()
    assert not report.retrain, report.reasons
    assert report.n_recent == 800 and report.loss_p_value > 0.01
    assert max(report.psi.values()) < 0.1


def test_concept_drift_asks_for_retraining() -> None:
    monitor, model = _monitor()
    X, y = stream(800, 7, flip=True)
    report = monitor.update(X, y, model.predict_proba(X)[:, 1]).check()
    assert report.retrain and report.loss_recent > report.loss_reference
    assert any("log loss rose" in r for r in report.reasons)


def test_covariate_shift_is_named() -> None:
    monitor, model = _monitor()
    X, y = stream(800, 8, shift=1.5)
    report = monitor.update(X, y, model.predict_proba(X)[:, 1]).check()
    assert report.retrain
    assert next(iter(report.psi)) == "x1" and report.psi["x1"] > 0.25
    assert any("x1 (PSI" in r for r in report.reasons)
    assert report.to_dict()["retrain"] is True


def test_too_few_recent_rows_are_not_judged() -> None:
    monitor, model = _monitor()
    X, y = stream(50, 9, flip=True)
    report = monitor.update(X, y, model.predict_proba(X)[:, 1]).check()
    assert not report.retrain and "only 50 recent rows" in report.reasons[0]


def test_psi_by_hand() -> None:
    expected, actual = np.array([50, 30, 20]), np.array([30, 30, 40])
    by_hand = (0.3 - 0.5) * math.log(0.3 / 0.5) + 0 + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert population_stability_index(expected, actual) == pytest.approx(by_hand)
    assert population_stability_index(expected, expected) == 0.0


def test_misuse_is_explained() -> None:
    with pytest.raises(NotFittedError):
        DriftMonitor().check()
    with pytest.raises(NotFittedError):
        OnlineLogisticModel().predict_proba(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(InvalidParameterError, match="'window' parameter of DriftMonitor"):
        DriftMonitor(window=1).fit(pd.DataFrame({"x": [1.0, 2.0]}), [0, 1], [0.5, 0.5])
    with pytest.raises(DataError, match="needs both classes"):
        OnlineLogisticModel().partial_fit(pd.DataFrame({"x": [1.0]}), [1])
    model = OnlineLogisticModel().partial_fit(pd.DataFrame({"x": [1.0]}), [1], classes=[0, 1])
    with pytest.raises(DataError, match="not among"):
        model.partial_fit(pd.DataFrame({"x": [1.0]}), [2])


def test_online_learning_on_a_stores_finished_sessions(sim_store: EventStore) -> None:
    """Prequential: each finished session is scored first, then learnt from, in time order."""
    frame = cart_features(sim_store)  # one row per session: its last cart event
    X, y = frame[list(FEATURE_NAMES)], frame["abandoned"].to_numpy()
    start = len(frame) // 3
    online = OnlineLogisticModel(random_state=0).fit(X.iloc[:start], y[:start])
    scores = []
    for i in range(start, len(frame)):
        scores.append(online.predict_proba(X.iloc[i : i + 1])[0, 1])
        online.partial_fit(X.iloc[i : i + 1], y[i : i + 1])
    frozen = LogisticModel().fit(X.iloc[:start], y[:start]).predict_proba(X.iloc[start:])[:, 1]
    assert roc_auc(y[start:], np.array(scores)) > 0.75
    assert roc_auc(y[start:], np.array(scores)) >= roc_auc(y[start:], frozen) - 0.03
