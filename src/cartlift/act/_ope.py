"""Off-policy evaluation: the value of a new policy, estimated from the log of the old one.

The log has, per round ``i``, the context ``x_i``, the action ``a_i`` the logging policy took
with probability ``p_i`` (its propensity), the reward ``r_i`` and, for slates, the position
``k_i``. The new policy is given by ``pi(a | x_i, k_i)`` (``action_dist``, shape (n, n_actions)
or (n, n_actions, len_list)); a reward model gives ``q(x_i, a, k_i)``. With the importance
weight ``w_i = pi(a_i | x_i, k_i) / p_i``:

=========  =====================================================================================
replay     mean of ``r_i`` over the rounds where the new policy's action (its most likely one, or
           a draw from ``pi``) equals ``a_i`` (Li et al. 2011; unbiased for uniform logging)
DM         ``mean_i sum_a pi(a | x_i) q(x_i, a)`` (direct method)
IPS        ``mean_i w_i r_i`` (Horvitz-Thompson)
SNIPS      ``sum_i w_i r_i / sum_i w_i`` (self-normalised; stays within the reward range)
DR         ``mean_i [DM_i + w_i (r_i - q(x_i, a_i))]`` (Dudík et al. 2014)
SNDR       ``mean_i [DM_i + w_i (r_i - q(x_i, a_i)) / mean_j w_j]``
=========  =====================================================================================

Confidence intervals resample the rounds with replacement (nonparametric bootstrap, percentile
interval). Inputs are checked as in zr-obp: one length for every per-round array, integer
actions inside the policy's action set, propensities in (0, 1], a distribution per round.

References: L. Li, W. Chu, J. Langford, X. Wang (2011), "Unbiased offline evaluation of
contextual-bandit-based news article recommendation algorithms", WSDM; M. Dudík, D. Erhan,
J. Langford, L. Li (2014), "Doubly robust policy evaluation and optimization", Statistical
Science 29(4); A. Swaminathan, T. Joachims (2015), "The self-normalized estimator for
counterfactual learning", NeurIPS; Y. Saito et al. (2021), "Open Bandit Dataset and Pipeline",
NeurIPS Datasets and Benchmarks (zr-obp ``obp/ope/estimators.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from cartlift._random import RandomState, check_random_state
from cartlift.errors import DataError, InvalidParameterError

__all__ = [
    "ESTIMATORS",
    "BanditLog",
    "check_log",
    "estimate_interval",
    "estimate_policy_value",
    "evaluate_policy",
]

ESTIMATORS: Final = ("replay", "dm", "ips", "snips", "dr", "sndr")
"""Estimator names, in the order results are reported."""
_NEEDS_MODEL: Final = ("dm", "dr", "sndr")


@dataclass(frozen=True)
class BanditLog:
    """Checked per-round arrays of a logged policy (see `check_log`).

    Attributes
    ----------
    reward, pscore : ndarray of float, shape (n,)
    action, position : ndarray of int, shape (n,)
    action_dist : ndarray of float, shape (n, n_actions, len_list)
    estimated_rewards : ndarray of float, shape (n, n_actions, len_list), or None
    """

    reward: np.ndarray
    action: np.ndarray
    pscore: np.ndarray
    position: np.ndarray
    action_dist: np.ndarray
    estimated_rewards: np.ndarray | None

    @property
    def n_rounds(self) -> int:
        """Rounds in the log."""
        return int(self.reward.shape[0])

    def take(self, rows: np.ndarray) -> BanditLog:
        """The log restricted to (or resampled as) ``rows``."""
        q = None if self.estimated_rewards is None else self.estimated_rewards[rows]
        return BanditLog(
            self.reward[rows],
            self.action[rows],
            self.pscore[rows],
            self.position[rows],
            self.action_dist[rows],
            q,
        )

    def weights(self) -> np.ndarray:
        """``pi(a_i | x_i, k_i) / p_i``."""
        return np.asarray(self.factual(self.action_dist) / self.pscore)

    def factual(self, table: np.ndarray) -> np.ndarray:
        """``table[i, a_i, k_i]`` for every round."""
        return np.asarray(table[np.arange(self.n_rounds), self.action, self.position])


def _vector(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D array. Got an array of shape {arr.shape}.")
    return arr


def check_log(
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards: Any = None,
) -> BanditLog:
    """Validate a log and a policy to evaluate, zr-obp style; returns the arrays as a `BanditLog`.

    Raises
    ------
    DataError
        With a message naming the array, what it must be and what was given.
    """
    r = _vector("reward", reward).astype(float)
    a = _vector("action", action)
    p = _vector("pscore", pscore).astype(float)
    n = r.shape[0]
    if n == 0:
        raise DataError("The log is empty: reward has no rounds.")
    for name, arr in (("action", a), ("pscore", p)):
        if arr.shape[0] != n:
            raise DataError(f"{name} and reward must have the same length. Got {arr.shape[0]} and {n}.")
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.mod(a, 1) == 0):
            a = a.astype(np.int64)
        else:
            raise DataError(f"action must hold integer action indices. Got dtype {a.dtype}.")
    if (a < 0).any():
        raise DataError(f"action must be >= 0. Got a minimum of {a.min()}.")
    if not np.isfinite(r).all():
        raise DataError("reward must be finite (no NaN or inf).")
    if not (np.isfinite(p).all() and (p > 0).all() and (p <= 1).all()):
        raise DataError(
            f"pscore must be in (0, 1]: the logging policy's probability of the logged action. "
            f"Got values from {np.nanmin(p)!r} to {np.nanmax(p)!r}."
        )
    dist = np.asarray(action_dist, dtype=float)
    if dist.ndim == 2:
        dist = dist[:, :, None]
    if dist.ndim != 3 or dist.shape[0] != n:
        raise DataError(
            f"action_dist must have shape (n_rounds, n_actions) or (n_rounds, n_actions, len_list) with "
            f"n_rounds = {n}. Got {np.shape(action_dist)}."
        )
    n_actions, len_list = dist.shape[1], dist.shape[2]
    if a.max() >= n_actions:
        raise DataError(f"action must be < n_actions = {n_actions} (action_dist's 2nd axis). Got {a.max()}.")
    if (dist < 0).any() or not np.allclose(dist.sum(axis=1), 1.0, atol=1e-6):
        raise DataError(
            "action_dist must be a probability distribution over actions (>= 0, summing to 1) per round."
        )
    k = np.zeros(n, dtype=np.int64) if position is None else _vector("position", position)
    if k.shape[0] != n:
        raise DataError(f"position and reward must have the same length. Got {k.shape[0]} and {n}.")
    if k.dtype.kind not in "iu" or (k < 0).any() or (k >= len_list).any():
        raise DataError(
            f"position must hold integers in [0, len_list = {len_list}). Got values {np.unique(k)[:5]}."
        )
    q = None
    if estimated_rewards is not None:
        q = np.asarray(estimated_rewards, dtype=float)
        if q.ndim == 2:
            q = q[:, :, None]
        if q.shape != dist.shape:
            raise DataError(
                f"estimated_rewards must have the shape of action_dist {dist.shape}. Got {np.shape(estimated_rewards)}."
            )
        if not np.isfinite(q).all():
            raise DataError("estimated_rewards must be finite.")
    return BanditLog(r, a.astype(np.int64), p, k.astype(np.int64), dist, q)


def _point(name: str, log: BanditLog, rng: np.random.Generator) -> float:
    r = log.reward
    if name == "replay":
        dist = log.action_dist[np.arange(log.n_rounds), :, log.position]
        if np.allclose(dist.max(axis=1), 1.0):
            target = dist.argmax(axis=1)
        else:
            # a stochastic policy is replayed with one draw of its action per round
            u = rng.random(log.n_rounds)[:, None]
            target = (np.cumsum(dist, axis=1) < u).sum(axis=1).clip(max=dist.shape[1] - 1)
        match = target == log.action
        return float(r[match].mean()) if match.any() else float("nan")
    w = log.weights()
    if name == "ips":
        return float(np.mean(w * r))
    if name == "snips":
        return float(np.sum(w * r) / np.sum(w)) if np.sum(w) > 0 else float("nan")
    q = log.estimated_rewards
    if q is None:
        raise InvalidParameterError(
            f"The {name!r} estimator needs estimated_rewards (a reward model's predictions)."
        )
    dm = np.sum(
        log.action_dist[np.arange(log.n_rounds), :, log.position]
        * q[np.arange(log.n_rounds), :, log.position],
        axis=1,
    )
    if name == "dm":
        return float(np.mean(dm))
    resid = r - log.factual(q)
    if name == "dr":
        return float(np.mean(dm + w * resid))
    if name == "sndr":
        mw = np.mean(w)
        return float(np.mean(dm + w * resid / mw)) if mw > 0 else float("nan")
    raise InvalidParameterError(f"Unknown estimator {name!r}. Use one of: {', '.join(ESTIMATORS)}.")


def _checked_log(estimator: str, **arrays: Any) -> BanditLog:
    """Refuse an unknown estimator name, then validate the logged arrays (`check_log`)."""
    if estimator not in ESTIMATORS:
        raise InvalidParameterError(f"Unknown estimator {estimator!r}. Use one of: {', '.join(ESTIMATORS)}.")
    return check_log(**arrays)


def estimate_policy_value(
    estimator: str,
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards: Any = None,
    random_state: RandomState = None,
) -> float:
    """One estimator's estimate of the new policy's value (mean reward per round).

    Parameters
    ----------
    estimator : {"replay", "dm", "ips", "snips", "dr", "sndr"}
    reward : array-like, shape (n,)
    action : array-like of int, shape (n,)
        Logged action indices.
    pscore : array-like, shape (n,)
        Logging propensities, in (0, 1].
    action_dist : array-like, shape (n, n_actions) or (n, n_actions, len_list)
        The new policy's action probabilities per round (and position).
    position : array-like of int, shape (n,), optional
        Slot of the logged action (slates); default 0.
    estimated_rewards : array-like, shape of ``action_dist``, optional
        Reward model predictions; needed by DM, DR and SNDR.
    random_state : int, numpy.random.Generator or None
        Replay's draws when the policy is stochastic.
    """
    log = _checked_log(
        estimator,
        reward=reward,
        action=action,
        pscore=pscore,
        action_dist=action_dist,
        position=position,
        estimated_rewards=estimated_rewards,
    )
    return _point(estimator, log, check_random_state(random_state))


def _interval(
    name: str, log: BanditLog, n_bootstrap: int, alpha: float, rng: np.random.Generator
) -> dict[str, float]:
    value = _point(name, log, rng)
    samples = np.array(
        [_point(name, log.take(rng.integers(0, log.n_rounds, log.n_rounds)), rng) for _ in range(n_bootstrap)]
    )
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return {"value": value, "ci_low": float("nan"), "ci_high": float("nan")}
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return {"value": value, "ci_low": float(low), "ci_high": float(high)}


def _check_boot(n_bootstrap: Any, alpha: Any) -> None:
    if not (
        isinstance(n_bootstrap, int | np.integer) and not isinstance(n_bootstrap, bool) and n_bootstrap >= 1
    ):
        raise InvalidParameterError(f"n_bootstrap must be an int >= 1. Got {n_bootstrap!r} instead.")
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise InvalidParameterError(f"alpha must be a float in (0, 1). Got {alpha!r} instead.")


def estimate_interval(
    estimator: str,
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards: Any = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: RandomState = None,
) -> dict[str, float]:
    """An estimate with its bootstrap percentile interval: ``{"value", "ci_low", "ci_high"}``.

    ``n_bootstrap`` resamples of the rounds (with replacement) give the ``alpha / 2`` and
    ``1 - alpha / 2`` quantiles. Other parameters as in `estimate_policy_value`.
    """
    _check_boot(n_bootstrap, alpha)
    log = _checked_log(
        estimator,
        reward=reward,
        action=action,
        pscore=pscore,
        action_dist=action_dist,
        position=position,
        estimated_rewards=estimated_rewards,
    )
    return _interval(estimator, log, int(n_bootstrap), float(alpha), check_random_state(random_state))


def evaluate_policy(
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards: Any = None,
    estimators: Sequence[str] | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: RandomState = None,
) -> dict[str, dict[str, float]]:
    """Every requested estimator with its bootstrap interval, keyed by estimator name.

    Without ``estimated_rewards`` the model-based estimators (DM, DR, SNDR) are skipped unless
    asked for by name, in which case they raise.
    """
    _check_boot(n_bootstrap, alpha)
    log = check_log(
        reward=reward,
        action=action,
        pscore=pscore,
        action_dist=action_dist,
        position=position,
        estimated_rewards=estimated_rewards,
    )
    names = (
        [e for e in ESTIMATORS if log.estimated_rewards is not None or e not in _NEEDS_MODEL]
        if estimators is None
        else list(estimators)
    )
    unknown = sorted(set(names) - set(ESTIMATORS))
    if unknown:
        raise InvalidParameterError(
            f"Unknown estimator(s) {', '.join(unknown)}. Use: {', '.join(ESTIMATORS)}."
        )
    rng = check_random_state(random_state)
    return {name: _interval(name, log, int(n_bootstrap), float(alpha), rng) for name in names}
