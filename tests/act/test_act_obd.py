"""The Open Bandit Dataset sample: reading it like zr-obp, the evaluated policy, and the published OPE errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from cartlift.act import (
    PUBLISHED_RELATIVE_ERRORS,
    ZOZOTOWN_PRIOR_ALL,
    bernoulli_ts_action_dist,
    estimate_policy_value,
    load_open_bandit,
    reproduce_obd_benchmark,
)
from cartlift.errors import DataError


@pytest.fixture(scope="module")
def obd(shared_data: Path) -> Path:
    return shared_data / "open_bandit_obd_sample"


def test_logs_read_like_zr_obp(obd: Path) -> None:
    log = load_open_bandit(obd, "random", "all")
    assert log["n_rounds"] == 10_000 and log["n_actions"] == 80 and log["len_list"] == 3
    assert np.allclose(log["pscore"], 1 / 80)  # the uniform-random policy
    assert log["context"].shape[0] == 10_000 and set(np.unique(log["context"])) <= {0.0, 1.0}
    assert log["action_context"].shape == (80, 5)  # item id, three categorical features, item_feature_0
    bts = load_open_bandit(obd, "bts", "all")
    assert bts["reward"].mean() == pytest.approx(0.0042)  # the published ground truth of this sample
    with pytest.raises(DataError, match="No Open Bandit log"):
        load_open_bandit(obd, "random", "kids")


def test_uniform_target_on_a_uniform_log_gives_the_mean_click(obd: Path) -> None:
    log = load_open_bandit(obd, "random", "all")
    dist = np.full((log["n_rounds"], 80, 3), 1 / 80)
    for name in ("ips", "snips"):
        value = estimate_policy_value(
            name,
            reward=log["reward"],
            action=log["action"],
            pscore=log["pscore"],
            action_dist=dist,
            position=log["position"],
        )
        assert value == pytest.approx(log["reward"].mean())


def test_thompson_action_distribution() -> None:
    dist = bernoulli_ts_action_dist(
        ZOZOTOWN_PRIOR_ALL["alpha"], ZOZOTOWN_PRIOR_ALL["beta"], 3, n_sim=20_000, random_state=0
    )
    assert dist.shape == (80, 3)
    np.testing.assert_allclose(dist.sum(axis=0), 1.0)
    # two items, one slot: the share of wins is P(theta_0 > theta_1)
    two = bernoulli_ts_action_dist([3.0, 5.0], [7.0, 9.0], len_list=1, n_sim=200_000, random_state=1)
    exact = integrate.quad(lambda t: stats.beta(3, 7).pdf(t) * stats.beta(5, 9).cdf(t), 0, 1)[0]
    assert two[0, 0] == pytest.approx(exact, abs=0.004)
    with pytest.raises(DataError, match="positive values"):
        bernoulli_ts_action_dist([1.0, 0.0], [1.0, 1.0])


@pytest.mark.slow
def test_relative_errors_are_no_worse_than_1_2_times_the_published(obd: Path) -> None:
    """zr-obp's protocol: 30 bootstrap runs, logistic reward model, 3-fold cross-fitting."""
    result = reproduce_obd_benchmark(obd, n_runs=30, n_sim=1_000_000)
    assert set(result["relative_error"]) == set(PUBLISHED_RELATIVE_ERRORS)
    for name, ratio in result["ratio_to_published"].items():
        assert ratio <= 1.2, (name, result["relative_error"][name], PUBLISHED_RELATIVE_ERRORS[name])
