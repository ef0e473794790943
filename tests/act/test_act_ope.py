"""Off-policy estimators: hand-computed values on tiny logs, known truth by simulation, zr-obp-style input checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartlift.act import (
    ESTIMATORS,
    estimate_interval,
    estimate_policy_value,
    evaluate_policy,
    fit_reward_model,
)
from cartlift.errors import DataError, InvalidParameterError

# four rounds, two actions
REWARD = np.array([1.0, 0.0, 1.0, 0.0])
ACTION = np.array([0, 1, 1, 0])
PSCORE = np.array([0.5, 0.5, 0.25, 0.75])
DIST = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.2, 0.8]])
Q = np.array([[0.6, 0.2], [0.4, 0.3], [0.1, 0.9], [0.5, 0.5]])
LOG = {"reward": REWARD, "action": ACTION, "pscore": PSCORE, "action_dist": DIST, "estimated_rewards": Q}


def test_estimators_by_hand() -> None:
    w = np.array([1.0 / 0.5, 0.5 / 0.5, 1.0 / 0.25, 0.2 / 0.75])  # pi(a_i) / p_i
    dm_i = np.array([0.6, 0.5 * 0.4 + 0.5 * 0.3, 0.9, 0.2 * 0.5 + 0.8 * 0.5])
    resid = REWARD - np.array([0.6, 0.3, 0.9, 0.5])
    want = {
        "ips": np.mean(w * REWARD),  # (2 + 0 + 4 + 0) / 4 = 1.5
        "snips": np.sum(w * REWARD) / np.sum(w),
        "dm": np.mean(dm_i),
        "dr": np.mean(dm_i + w * resid),
        "sndr": np.mean(dm_i + w * resid / np.mean(w)),
    }
    assert want["ips"] == pytest.approx(1.5)
    for name, value in want.items():
        assert estimate_policy_value(name, **LOG) == pytest.approx(value), name
    # replay: the policy's most likely actions are 0, tie -> 0, 1, 1; matches in rounds 0, 2 -> mean(1, 1)
    assert estimate_policy_value(
        "replay", **{**LOG, "action_dist": np.eye(2)[[0, 0, 1, 1]]}
    ) == pytest.approx(1.0)


def test_positions_pick_the_slot_of_each_round() -> None:
    dist = np.zeros((2, 2, 2))
    dist[:, 0, 0] = dist[:, 1, 1] = 1.0  # slot 0 shows action 0, slot 1 action 1
    value = estimate_policy_value(
        "ips", reward=[1.0, 1.0], action=[0, 0], pscore=[0.5, 0.5], action_dist=dist, position=[0, 1]
    )
    assert value == pytest.approx((1.0 / 0.5 + 0.0) / 2)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=100_000))
def test_snips_stays_within_the_reward_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 30, 4
    reward = rng.uniform(-2.0, 5.0, n)
    p = rng.dirichlet(np.ones(k), n)
    action = np.array([rng.choice(k, p=row) for row in p])
    dist = rng.dirichlet(np.ones(k) * 0.3, n)
    value = estimate_policy_value(
        "snips", reward=reward, action=action, pscore=p[np.arange(n), action], action_dist=dist
    )
    assert np.isnan(value) or reward.min() - 1e-9 <= value <= reward.max() + 1e-9


def _synthetic_log(n: int, rng: np.random.Generator) -> tuple[dict, float]:
    """A contextual log from a known non-uniform policy; returns it and the target's true value."""
    x = rng.uniform(-1, 1, n)
    mean = np.column_stack([0.3 + 0.2 * x, 0.5 - 0.3 * x, 0.4 + 0.0 * x])
    logging = np.column_stack([np.full(n, 0.6), np.full(n, 0.3), np.full(n, 0.1)])
    action = (rng.random(n)[:, None] > np.cumsum(logging, axis=1)).sum(axis=1)
    reward = (rng.random(n) < mean[np.arange(n), action]).astype(float)
    target = np.eye(3)[np.where(x > 0, 0, 1)]  # the better of actions 0 and 1
    truth = float(np.mean(np.where(x > 0, 0.3 + 0.2 * x, 0.5 - 0.3 * x)))
    log = {"reward": reward, "action": action, "pscore": logging[np.arange(n), action], "action_dist": target}
    return {**log, "context": x[:, None]}, truth


def test_estimators_are_unbiased_against_a_known_truth() -> None:
    """IPS, SNIPS, DR and SNDR are unbiased with any reward model; DM only with a right one.

    The fitted reward model is logistic in ``[x, one-hot(a)]``, so it cannot give actions 0 and
    1 opposite slopes in ``x``: DM is biased with it, while DR and SNDR stay unbiased (double
    robustness). With the true mean reward, DM is unbiased too.
    """
    rng = np.random.default_rng(0)
    names = ("ips", "snips", "dr", "sndr", "dm")
    errors: dict[str, list[float]] = {k: [] for k in (*names, "dm_true")}
    for _ in range(40):
        log, truth = _synthetic_log(2000, rng)
        x = log.pop("context")
        q = fit_reward_model(x, log["action"], log["reward"], n_actions=3, n_folds=2, random_state=0)[:, :, 0]
        for name in names:
            errors[name].append(estimate_policy_value(name, **log, estimated_rewards=q) - truth)
        true_q = np.column_stack([0.3 + 0.2 * x[:, 0], 0.5 - 0.3 * x[:, 0], np.full(len(x), 0.4)])
        errors["dm_true"].append(estimate_policy_value("dm", **log, estimated_rewards=true_q) - truth)
    bias = {k: float(np.mean(v)) for k, v in errors.items()}
    se = {k: float(np.std(v) / np.sqrt(len(v))) for k, v in errors.items()}
    for name in ("ips", "snips", "dr", "sndr", "dm_true"):
        assert abs(bias[name]) < 4 * se[name] + 0.002, (name, bias[name], se[name])
    assert abs(bias["dm"]) > 10 * se["dm"]


def test_bootstrap_interval_brackets_the_estimate_and_covers_the_truth() -> None:
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(30):
        log, truth = _synthetic_log(1500, rng)
        log.pop("context")
        ci = estimate_interval("snips", **log, n_bootstrap=200, random_state=2)
        assert ci["ci_low"] <= ci["value"] <= ci["ci_high"]
        covered += ci["ci_low"] <= truth <= ci["ci_high"]
    assert covered >= 24  # nominal 95 %: 28.5 of 30, a binomial lower tail far below that fails


def test_evaluate_policy_skips_model_estimators_without_a_model() -> None:
    out = evaluate_policy(
        reward=REWARD, action=ACTION, pscore=PSCORE, action_dist=DIST, n_bootstrap=20, random_state=0
    )
    assert list(out) == ["replay", "ips", "snips"]
    full = evaluate_policy(**LOG, n_bootstrap=20, random_state=0)
    assert list(full) == list(ESTIMATORS)
    with pytest.raises(InvalidParameterError, match="needs estimated_rewards"):
        evaluate_policy(
            reward=REWARD, action=ACTION, pscore=PSCORE, action_dist=DIST, estimators=["dr"], n_bootstrap=5
        )


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"pscore": [0.5, 0.5, 0.0, 0.75]}, DataError, r"pscore must be in \(0, 1\]"),
        ({"pscore": [0.5, 0.5, 1.5, 0.75]}, DataError, r"pscore must be in \(0, 1\]"),
        ({"pscore": [0.5, 0.5, 0.25]}, DataError, "pscore and reward must have the same length"),
        ({"action": [0, 1, 1]}, DataError, "action and reward must have the same length"),
        ({"action": [0, 1, 2, 0]}, DataError, "action must be < n_actions = 2"),
        ({"action": [0, -1, 1, 0]}, DataError, "action must be >= 0"),
        ({"action": [0.5, 1, 1, 0]}, DataError, "integer action indices"),
        ({"reward": [[1.0], [0.0], [1.0], [0.0]]}, DataError, "reward must be a 1-D array"),
        ({"reward": [1.0, np.nan, 1.0, 0.0]}, DataError, "reward must be finite"),
        ({"reward": []}, DataError, "empty"),
        ({"action_dist": DIST[:3]}, DataError, "action_dist must have shape"),
        ({"action_dist": DIST * 2}, DataError, "probability distribution"),
        ({"estimated_rewards": Q[:, :1]}, DataError, "estimated_rewards must have the shape of action_dist"),
        ({"position": [0, 1, 0, 0]}, DataError, r"position must hold integers in \[0, len_list = 1\)"),
    ],
)
def test_invalid_logs_are_refused(changes: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        estimate_policy_value("dr", **{**LOG, **changes})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_bootstrap": 0}, "n_bootstrap must be an int >= 1"),
        ({"alpha": 1.0}, r"alpha must be a float in \(0, 1\)"),
        ({"estimators": ["ipw"]}, "Unknown estimator"),
    ],
)
def test_invalid_evaluation_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        evaluate_policy(**LOG, **kwargs)
