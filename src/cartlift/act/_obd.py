"""The Open Bandit Dataset (ZOZOTOWN): reading its logs and re-running zr-obp's OPE benchmark.

The protocol of zr-obp's ``examples/obd/evaluate_off_policy_estimators.py`` ("all" campaign):

- the policy to evaluate is Bernoulli Thompson sampling with ZOZOTOWN's production prior, whose
  action distribution over the 80 items and 3 slots comes from ``n_sim`` Monte-Carlo rankings of
  Beta draws (the same for every round);
- its true value is the mean click rate of the log it produced itself (the ``bts`` log);
- its value is estimated from the uniform-random log: ``n_runs`` bootstrap samples of the log
  (seeded 0 .. n_runs - 1), a logistic-regression reward model per slot on the user features
  (one-hot) and the item features, fitted with 3-fold cross-fitting (``C = 1000``,
  ``max_iter = 10000``: zr-obp's ``benchmark/ope/conf/hyperparams.yaml``);
- each estimator's relative error ``|V_hat - V| / V`` is averaged over the runs.

The published mean relative errors (zr-obp ``examples/obd/README.md``, 30 runs) are in
`PUBLISHED_RELATIVE_ERRORS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from cartlift._random import RandomState, check_random_state
from cartlift.act._ope import evaluate_policy
from cartlift.act._reward_model import fit_reward_model
from cartlift.errors import DataError

__all__ = [
    "PUBLISHED_RELATIVE_ERRORS",
    "ZOZOTOWN_PRIOR_ALL",
    "bernoulli_ts_action_dist",
    "load_open_bandit",
    "reproduce_obd_benchmark",
]

PUBLISHED_RELATIVE_ERRORS: Final[dict[str, float]] = {
    "dm": 0.157,
    "ips": 0.311,
    "snips": 0.312,
    "dr": 0.292,
    "sndr": 0.302,
}
"""zr-obp's mean relative estimation errors for Bernoulli TS from the random log, "all" campaign."""

# Beta prior of ZOZOTOWN's production Bernoulli TS, "all" campaign, item 0 .. 79 (zr-obp
# obp/policy/conf/prior_bts.yaml, Apache-2.0)
ZOZOTOWN_PRIOR_ALL: Final[dict[str, tuple[float, ...]]] = {
    "alpha": (
        47, 8, 62, 142, 3, 14, 7, 857, 12, 15, 6, 100, 48, 23, 71, 61, 13, 16, 518, 30,
        7, 4, 23, 8, 10, 11, 11, 18, 121, 11, 11, 10, 14, 9, 204, 58, 3, 19, 42, 1013,
        2, 328, 15, 31, 14, 138, 45, 55, 23, 38, 10, 401, 52, 6, 3, 6, 5, 32, 35, 133,
        52, 820, 43, 195, 8, 42, 40, 4, 32, 30, 9, 22, 6, 23, 5, 54, 8, 22, 65, 246,
    ),
    "beta": (
        12198, 3566, 15993, 35522, 2367, 4609, 3171, 181745, 4372, 4951, 3100, 24665, 13210, 7061,
        18061, 17449, 5644, 6787, 111326, 8776, 3334, 2271, 7389, 2659, 3665, 4724, 3561, 5085,
        27407, 4601, 4756, 4120, 4736, 3788, 45292, 14719, 2189, 5589, 11995, 222255, 2308, 70034,
        4801, 8274, 5421, 31912, 12213, 13576, 6230, 10382, 4141, 85731, 12811, 2707, 2250, 2668,
        2886, 9581, 9465, 28336, 12062, 162793, 12107, 41240, 3162, 11604, 10818, 2923, 8897, 8654,
        4000, 6580, 3174, 6766, 2602, 14506, 3968, 7523, 16532, 51964,
    ),
}  # fmt: skip


def load_open_bandit(path: str | Path, behavior: str = "random", campaign: str = "all") -> dict[str, Any]:
    """Read one OBD log the way zr-obp's ``OpenBanditDataset`` does.

    Rounds are sorted by time; the context is the one-hot user features (first level dropped);
    the action context is the label-encoded item columns (the item id and the categorical
    features) followed by the numeric ``item_feature_0``; positions are 0-based.

    Returns
    -------
    dict
        ``context``, ``action``, ``position``, ``reward``, ``pscore``, ``action_context``,
        ``n_actions``, ``len_list``, ``n_rounds``.
    """
    folder = Path(path) / behavior / campaign
    log_file, items_file = folder / f"{campaign}.csv", folder / "item_context.csv"
    if not log_file.is_file() or not items_file.is_file():
        raise DataError(
            f"No Open Bandit log at {folder}: expected {campaign}.csv and item_context.csv there."
        )
    data = pd.read_csv(log_file, index_col=0).sort_values("timestamp", kind="stable")
    items = pd.read_csv(items_file, index_col=0)
    users = data.loc[:, data.columns.str.contains("user_feature")]
    context = pd.get_dummies(users, drop_first=True).to_numpy(dtype=float)
    # zr-obp label-encodes every item column but item_feature_0, the item id included
    cats = items.drop(columns=["item_feature_0"]).apply(lambda s: pd.factorize(s, sort=True)[0])
    action_context = np.column_stack(
        [cats.to_numpy(dtype=float), items["item_feature_0"].to_numpy(dtype=float)]
    )
    position = pd.Series(data["position"]).rank(method="dense").to_numpy(dtype=np.int64) - 1
    action = data["item_id"].to_numpy(dtype=np.int64)
    return {
        "context": context,
        "action": action,
        "position": position,
        "reward": data["click"].to_numpy(dtype=float),
        "pscore": data["propensity_score"].to_numpy(dtype=float),
        "action_context": action_context,
        "n_actions": int(action.max() + 1),
        "len_list": int(position.max() + 1),
        "n_rounds": len(data),
    }


def bernoulli_ts_action_dist(
    alpha: Any, beta: Any, len_list: int = 3, n_sim: int = 1_000_000, random_state: RandomState = None
) -> np.ndarray:
    """How often each item lands in each slot when Bernoulli TS ranks items by Beta draws.

    Each simulation draws ``theta_a ~ Beta(alpha_a, beta_a)`` for every item and puts the
    ``len_list`` largest in slots 0, 1, ...; returns the shares, shape (n_actions, len_list).
    """
    a = np.asarray(alpha, dtype=float)
    b = np.asarray(beta, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or (a <= 0).any() or (b <= 0).any():
        raise DataError("alpha and beta must be 1-D arrays of the same length with positive values.")
    rng = check_random_state(random_state)
    counts = np.zeros((a.size, len_list))
    done = 0
    while done < n_sim:
        size = min(100_000, n_sim - done)
        theta = rng.beta(a, b, size=(size, a.size))
        top = np.argsort(-theta, axis=1)[:, :len_list]
        for pos in range(len_list):
            counts[:, pos] += np.bincount(top[:, pos], minlength=a.size)
        done += size
    return counts / n_sim


def reproduce_obd_benchmark(
    path: str | Path,
    *,
    n_runs: int = 30,
    n_sim: int = 1_000_000,
    random_state: int = 12345,
    n_bootstrap: int = 1,
) -> dict[str, Any]:
    """Re-run zr-obp's OBD benchmark (see the module docstring) and compare with the published errors.

    Parameters
    ----------
    path : str or Path
        The ``open_bandit_obd_sample`` folder (with ``random/`` and ``bts/``).
    n_runs : int
        Bootstrap samples of the random log (zr-obp: 30).
    n_sim : int
        Monte-Carlo rankings for the evaluated policy's action distribution.
    random_state : int
        Seeds the policy's rankings and the cross-fitting folds (zr-obp: 12345).
    n_bootstrap : int
        Bootstrap resamples inside each run (only for the intervals; 1 keeps it fast).

    Returns
    -------
    dict
        ``ground_truth``, ``relative_error`` per estimator (mean over runs, and ``std``),
        ``published`` and ``ratio_to_published``, ``estimates`` (mean estimated value), ``runs``.
    """
    random_log = load_open_bandit(path, "random", "all")
    truth = float(load_open_bandit(path, "bts", "all")["reward"].mean())
    dist = bernoulli_ts_action_dist(
        ZOZOTOWN_PRIOR_ALL["alpha"],
        ZOZOTOWN_PRIOR_ALL["beta"],
        len_list=random_log["len_list"],
        n_sim=n_sim,
        random_state=random_state,
    )
    names = list(PUBLISHED_RELATIVE_ERRORS)
    errors: dict[str, list[float]] = {k: [] for k in names}
    values: dict[str, list[float]] = {k: [] for k in names}
    n = random_log["n_rounds"]
    for run in range(n_runs):
        rows = np.random.RandomState(run).choice(np.arange(n), size=n, replace=True)
        boot = {k: random_log[k][rows] for k in ("context", "action", "position", "reward", "pscore")}
        q = fit_reward_model(
            boot["context"],
            boot["action"],
            boot["reward"],
            n_actions=random_log["n_actions"],
            position=boot["position"],
            len_list=random_log["len_list"],
            action_context=random_log["action_context"],
            base_model=LogisticRegression(C=1000.0, max_iter=10_000, random_state=random_state),
            n_folds=3,
            random_state=random_state,
        )
        result = evaluate_policy(
            reward=boot["reward"],
            action=boot["action"],
            pscore=boot["pscore"],
            action_dist=np.broadcast_to(dist, (n, *dist.shape)),
            position=boot["position"],
            estimated_rewards=q,
            estimators=names,
            n_bootstrap=n_bootstrap,
            random_state=run,
        )
        for k in names:
            values[k].append(result[k]["value"])
            errors[k].append(abs(result[k]["value"] - truth) / truth)
    mean_err = {k: float(np.mean(v)) for k, v in errors.items()}
    return {
        "ground_truth": truth,
        "runs": n_runs,
        "relative_error": mean_err,
        "relative_error_std": {k: float(np.std(v)) for k, v in errors.items()},
        "published": dict(PUBLISHED_RELATIVE_ERRORS),
        "ratio_to_published": {k: mean_err[k] / PUBLISHED_RELATIVE_ERRORS[k] for k in names},
        "estimates": {k: float(np.mean(v)) for k, v in values.items()},
    }
