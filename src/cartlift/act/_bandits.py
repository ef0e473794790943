"""Bandits that keep learning live: the shared API and the context-free ones.

Every bandit estimates ``r_a(x)``, the reward of action ``a`` in context ``x`` (here: the chance
that the cart is bought), and turns it into the value of each action for a decision as

    value_a = r_a(x) * gain_a - cost_a,

with ``gain`` and ``cost`` per cart and action (for profit: ``gain = margin - discount_a``,
``cost = cost_a``; by default 1 and 0, i.e. the reward itself). How ``r`` is read differs:

- Thompson sampling draws ``r`` from the posterior (`BetaBernoulliTS`, and `LinearTS`,
  `LogisticTS` with context);
- `LinUCB` adds an optimism bonus ``alpha * width * |gain|``;
- `EpsilonGreedy` uses the posterior mean and explores a share ``epsilon`` of decisions.

``partial_fit`` adds observations (the bandit keeps learning from each batch of outcomes), ``fit``
starts over. ``choose`` picks the best eligible action, breaking ties at random, and returns the
propensity of the choice. Randomness comes from one ``random_state``.

References: W. R. Thompson (1933), Biometrika 25:285-294; O. Chapelle, L. Li (2011), "An
empirical evaluation of Thompson sampling", NeurIPS; S. Agrawal, N. Goyal (2013), "Thompson
sampling for contextual bandits with linear payoffs", ICML; L. Li, W. Chu, J. Langford,
R. E. Schapire (2010), "A contextual-bandit approach to personalized news article
recommendation", WWW; R. S. Sutton, A. G. Barto (2018), "Reinforcement Learning", ch. 2.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from cartlift._params import Constraint, Interval, validate_params
from cartlift._random import check_random_state
from cartlift.errors import DataError, NotFittedError

__all__ = ["Bandit", "BetaBernoulliTS", "EpsilonGreedy"]


class Bandit:
    """What every bandit shares: checks, ``fit``/``partial_fit``, values and ``choose``.

    Subclasses implement ``_reset(d)``, ``_update(X, actions, rewards)`` and
    ``_values(X, gain, cost, n_draws)``.
    """

    contextual: ClassVar[bool] = False
    sampled: ClassVar[bool] = False
    epsilon: float = 0.0
    dim_: int
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {}

    def __init__(self, n_actions: int, random_state: int | np.random.Generator | None = None) -> None:
        self.n_actions = n_actions
        self.random_state = random_state

    # -- learning --------------------------------------------------------------------------------
    def fit(self, X: Any, actions: Any, rewards: Any) -> Self:
        """Forget everything and learn from these observations (see `partial_fit`)."""
        validate_params(self)
        for attr in ("n_seen_", "rng_"):
            self.__dict__.pop(attr, None)
        return self.partial_fit(X, actions, rewards)

    def partial_fit(self, X: Any, actions: Any, rewards: Any) -> Self:
        """Add observations: the action taken in each context and the reward that followed.

        Parameters
        ----------
        X : array-like, shape (n, d), or None for context-free bandits
        actions : array-like of int, shape (n,)
            Action indices in ``[0, n_actions)``.
        rewards : array-like of float, shape (n,)
        """
        if not hasattr(self, "n_seen_"):
            validate_params(self)
            self.rng_ = check_random_state(self.random_state)
            self.n_seen_ = 0
            self._reset(self._dim(X))
        Xm, a, r = self._check(X, actions, rewards)
        if a.size:
            self._update(Xm, a, r)
            self.n_seen_ += int(a.size)
        return self

    def _dim(self, X: Any) -> int:
        if not self.contextual:
            return 0
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2:
            raise DataError(f"X must be a 2-D array of contexts (n, d). Got shape {arr.shape}.")
        return int(arr.shape[1]) + int(getattr(self, "fit_intercept", False))

    def _matrix(self, X: Any, n: int | None = None) -> np.ndarray:
        if not self.contextual:
            rows = n if n is not None else (0 if X is None else len(X))
            return np.zeros((rows, 0))
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2:
            raise DataError(f"X must be a 2-D array of contexts (n, d). Got shape {arr.shape}.")
        if not np.isfinite(arr).all():
            raise DataError("X must be finite (no NaN or inf): impute missing context before deciding.")
        if getattr(self, "fit_intercept", False):
            arr = np.column_stack([np.ones(arr.shape[0]), arr])
        if arr.shape[1] != self.dim_:
            raise DataError(f"X has {arr.shape[1]} columns; this bandit learned from {self.dim_}.")
        return arr

    def _check(self, X: Any, actions: Any, rewards: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = np.asarray(actions).ravel()
        r = np.asarray(rewards, dtype=float).ravel()
        if a.shape != r.shape:
            raise DataError(f"actions and rewards must have the same length. Got {a.size} and {r.size}.")
        if a.size and (a.dtype.kind not in "iu" or a.min() < 0 or a.max() >= self.n_actions):
            raise DataError(
                f"actions must be integers in [0, {self.n_actions}). Got values {np.unique(a)[:5]}."
            )
        if not np.isfinite(r).all():
            raise DataError("rewards must be finite numbers.")
        Xm = self._matrix(X, a.size)
        if Xm.shape[0] != a.size:
            raise DataError(f"X has {Xm.shape[0]} rows for {a.size} actions; give one context per action.")
        return Xm, a.astype(np.int64), r

    def _reset(self, dim: int) -> None:
        raise NotImplementedError

    def _update(self, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        raise NotImplementedError

    def _values(self, X: np.ndarray, gain: np.ndarray, cost: np.ndarray, n_draws: int) -> np.ndarray:
        raise NotImplementedError

    # -- deciding --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_seen_"):
            raise NotFittedError(
                f"This {type(self).__name__} has no state yet; call partial_fit (possibly with no rows) first."
            )

    def values(
        self, X: Any, gain: Any = None, cost: Any = None, *, n: int | None = None, n_draws: int = 1
    ) -> np.ndarray:
        """The value of each action for each context, shape (n, n_actions, n_draws).

        Parameters
        ----------
        X : array-like, shape (n, d), or None for context-free bandits (then give ``n``)
        gain, cost : array-like, shape (n, n_actions), optional
            ``value = reward * gain - cost`` (defaults 1 and 0).
        n_draws : int
            Posterior draws (Thompson sampling); other bandits return one.
        """
        self._check_fitted()
        Xm = self._matrix(X, n)
        rows = Xm.shape[0]
        g = np.ones((rows, self.n_actions)) if gain is None else np.asarray(gain, dtype=float)
        c = np.zeros((rows, self.n_actions)) if cost is None else np.asarray(cost, dtype=float)
        if g.shape != (rows, self.n_actions) or c.shape != (rows, self.n_actions):
            raise DataError(f"gain and cost must have shape (n, n_actions) = ({rows}, {self.n_actions}).")
        return self._values(Xm, g, c, max(1, int(n_draws)) if self.sampled else 1)

    def choose(
        self,
        X: Any,
        eligible: Any = None,
        gain: Any = None,
        cost: Any = None,
        *,
        n: int | None = None,
        n_draws: int = 100,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best eligible action per context (ties at random) and the probability of that choice.

        Parameters
        ----------
        X, gain, cost, n
            As in `values`.
        eligible : array-like of bool, shape (n, n_actions), optional
            Allowed actions (default all); every row needs at least one.
        n_draws : int
            Thompson draws used to estimate the propensity (the first one decides).

        Returns
        -------
        actions : ndarray of int, shape (n,)
        propensities : ndarray of float, shape (n,), in (0, 1]
        """
        v = self.values(X, gain, cost, n=n, n_draws=n_draws)
        rows = v.shape[0]
        ok = (
            np.ones((rows, self.n_actions), dtype=bool)
            if eligible is None
            else np.asarray(eligible, dtype=bool)
        )
        if ok.shape != (rows, self.n_actions) or not ok.any(axis=1).all():
            raise DataError(
                "eligible must have shape (n, n_actions) with at least one allowed action per row."
            )
        rng = self.rng_
        masked = np.where(ok[:, :, None], v, -np.inf)
        first = masked[:, :, 0]
        best = first.max(axis=1, keepdims=True)
        ties = ok & (first >= best - 1e-12 * np.maximum(1.0, np.abs(best)))
        keys = np.where(ties, rng.random(ties.shape), -1.0)
        greedy = keys.argmax(axis=1)
        explore = rng.random(rows) < self.epsilon
        n_ok = ok.sum(axis=1)
        random_pick = np.array([rng.choice(np.flatnonzero(row)) for row in ok[explore]], dtype=np.int64)
        chosen = greedy.copy()
        chosen[explore] = random_pick
        idx = np.arange(rows)
        if v.shape[2] > 1:
            wins = masked.argmax(axis=1)  # best action of every draw, shape (n, n_draws)
            p_greedy = (wins == chosen[:, None]).mean(axis=1)
        else:
            p_greedy = np.where(ties[idx, chosen], 1.0 / ties.sum(axis=1), 0.0)
        prop = (1.0 - self.epsilon) * p_greedy + self.epsilon / n_ok
        return chosen, prop


class BetaBernoulliTS(Bandit):
    """Thompson sampling with a Beta prior on each action's success rate (no context).

    The posterior of action ``a`` after ``s_a`` successes and ``f_a`` failures is
    ``Beta(alpha_a + s_a, beta_a + f_a)``; each decision draws one rate per action. Rewards in
    [0, 1] add fractional successes.

    Parameters
    ----------
    n_actions : int
    alpha, beta : float or array-like of shape (n_actions,)
        Prior pseudo-counts of successes and failures (default 1: uniform).
    random_state : int, numpy.random.Generator or None
    """

    sampled: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "n_actions": [Interval(int, 1, None)],
        "random_state": [None, int, np.random.Generator],
    }

    def __init__(
        self,
        n_actions: int,
        alpha: float | np.ndarray = 1.0,
        beta: float | np.ndarray = 1.0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(n_actions, random_state)
        self.alpha = alpha
        self.beta = beta

    def _reset(self, dim: int) -> None:
        a = np.broadcast_to(np.asarray(self.alpha, dtype=float), (self.n_actions,)).copy()
        b = np.broadcast_to(np.asarray(self.beta, dtype=float), (self.n_actions,)).copy()
        if (a <= 0).any() or (b <= 0).any():
            raise DataError("alpha and beta must be > 0 (Beta prior pseudo-counts).")
        self.dim_ = 0
        self.alpha_, self.beta_ = a, b

    def _update(self, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        if (rewards < 0).any() or (rewards > 1).any():
            raise DataError("BetaBernoulliTS needs rewards in [0, 1] (e.g. bought or not).")
        self.alpha_ += np.bincount(actions, weights=rewards, minlength=self.n_actions)
        self.beta_ += np.bincount(actions, weights=1.0 - rewards, minlength=self.n_actions)

    @property
    def means_(self) -> np.ndarray:
        """Posterior mean success rate of each action."""
        self._check_fitted()
        return np.asarray(self.alpha_ / (self.alpha_ + self.beta_))

    def _values(self, X: np.ndarray, gain: np.ndarray, cost: np.ndarray, n_draws: int) -> np.ndarray:
        rows = X.shape[0]
        theta = self.rng_.beta(
            self.alpha_[None, :, None], self.beta_[None, :, None], size=(rows, self.n_actions, n_draws)
        )
        return np.asarray(theta * gain[:, :, None] - cost[:, :, None])


class EpsilonGreedy(Bandit):
    """The best action by its mean reward so far, except a share ``epsilon`` of random decisions.

    Parameters
    ----------
    n_actions : int
    epsilon : float in [0, 1]
    initial_value : float
        Assumed mean reward of an action never tried (optimistic by default, so each is tried).
    random_state : int, numpy.random.Generator or None
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "n_actions": [Interval(int, 1, None)],
        "epsilon": [Interval(float, 0, 1)],
        "initial_value": [Interval(float, None, None)],
        "random_state": [None, int, np.random.Generator],
    }

    def __init__(
        self,
        n_actions: int,
        epsilon: float = 0.1,
        initial_value: float = 1.0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(n_actions, random_state)
        self.epsilon = epsilon
        self.initial_value = initial_value

    def _reset(self, dim: int) -> None:
        self.dim_ = 0
        self.counts_ = np.zeros(self.n_actions)
        self.sums_ = np.zeros(self.n_actions)

    def _update(self, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.counts_ += np.bincount(actions, minlength=self.n_actions)
        self.sums_ += np.bincount(actions, weights=rewards, minlength=self.n_actions)

    @property
    def means_(self) -> np.ndarray:
        """Mean reward of each action so far (``initial_value`` for untried actions)."""
        self._check_fitted()
        return np.where(self.counts_ > 0, self.sums_ / np.maximum(self.counts_, 1), float(self.initial_value))

    def _values(self, X: np.ndarray, gain: np.ndarray, cost: np.ndarray, n_draws: int) -> np.ndarray:
        return np.asarray(self.means_[None, :] * gain - cost)[:, :, None]
