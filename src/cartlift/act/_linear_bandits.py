"""Contextual bandits with one linear (or logistic) model per action: LinUCB, linear and logistic TS.

For action ``a`` with observations ``(x_i, r_i)``:

- `LinUCB` (Li et al. 2010, disjoint model): ``A_a = l2 I + sum x x^T``, ``b_a = sum r x``,
  ``theta_a = A_a^-1 b_a``; the value uses ``x.theta_a`` plus the bonus ``alpha sqrt(x^T A_a^-1 x)``.
- `LinearTS` (Agrawal & Goyal 2013): the same ridge posterior, ``theta_a ~ N(A_a^-1 b_a,
  v^2 A_a^-1)``. Only ``x.theta_a`` matters for a decision, and it is Gaussian with mean
  ``x.mu_a`` and variance ``v^2 x^T A_a^-1 x``, so it is drawn directly (exact, and cheap).
- `LogisticTS` (Chapelle & Li 2011, Algorithm 3): a Laplace approximation with diagonal precision
  ``q``; each batch finds the mode ``m`` of ``1/2 sum q_j (w_j - m_j)^2 + sum log(1 + exp(-y w.x))``
  (``y`` in {-1, 1}) and adds ``sum x_j^2 p (1 - p)`` to ``q_j``. A draw of the logit is
  ``N(x.m, alpha^2 sum x_j^2 / q_j)``, passed through the sigmoid.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from cartlift._params import Constraint, Interval
from cartlift.act._bandits import Bandit
from cartlift.errors import DataError

__all__ = ["LinUCB", "LinearTS", "LogisticTS"]

_COMMON: dict[str, list[Constraint]] = {
    "n_actions": [Interval(int, 1, None)],
    "l2": [Interval(float, 0, None, closed="neither")],
    "fit_intercept": [bool],
    "random_state": [None, int, np.random.Generator],
}


class _Ridge(Bandit):
    """Per-action ridge regression statistics shared by LinUCB and linear TS."""

    contextual: ClassVar[bool] = True

    def __init__(
        self,
        n_actions: int,
        l2: float = 1.0,
        fit_intercept: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(n_actions, random_state)
        self.l2 = l2
        self.fit_intercept = fit_intercept

    def _reset(self, dim: int) -> None:
        self.dim_ = dim
        self.A_inv_ = np.tile(np.eye(dim) / float(self.l2), (self.n_actions, 1, 1))
        self.b_ = np.zeros((self.n_actions, dim))

    def _update(self, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        for a in np.unique(actions):
            rows = actions == a
            Xa = X[rows]
            A = np.linalg.inv(self.A_inv_[a]) + Xa.T @ Xa
            self.A_inv_[a] = np.linalg.inv(A)
            self.b_[a] += Xa.T @ rewards[rows]

    @property
    def coef_(self) -> np.ndarray:
        """Posterior mean weights ``A^-1 b`` per action, shape (n_actions, d)."""
        self._check_fitted()
        return np.einsum("aij,aj->ai", self.A_inv_, self.b_)

    def _mean_width(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = X @ self.coef_.T
        width = np.sqrt(np.maximum(np.einsum("ni,aij,nj->na", X, self.A_inv_, X), 0.0))
        return mean, width


class LinUCB(_Ridge):
    """Upper confidence bounds on a ridge model per action (disjoint LinUCB).

    Parameters
    ----------
    n_actions : int
    alpha : float
        Width of the confidence bonus; 0 is greedy.
    l2 : float
        Ridge penalty (prior precision).
    fit_intercept : bool
        Add a constant feature.
    random_state : int, numpy.random.Generator or None
        Breaks ties.
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        **_COMMON,
        "alpha": [Interval(float, 0, None)],
    }

    def __init__(
        self,
        n_actions: int,
        alpha: float = 1.0,
        l2: float = 1.0,
        fit_intercept: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(n_actions, l2, fit_intercept, random_state)
        self.alpha = alpha

    def _values(self, X: np.ndarray, gain: np.ndarray, cost: np.ndarray, n_draws: int) -> np.ndarray:
        mean, width = self._mean_width(X)
        # optimism in the direction that raises the value: a negative gain flips the bound
        return np.asarray(mean * gain - cost + float(self.alpha) * width * np.abs(gain))[:, :, None]


class LinearTS(_Ridge):
    """Thompson sampling from the Gaussian posterior of a ridge model per action.

    Parameters
    ----------
    n_actions : int
    v : float
        Posterior scale ``v`` (exploration); Agrawal & Goyal's theory uses
        ``R sqrt(24 d log(1/delta) / epsilon)``, in practice 0.1-1.
    l2, fit_intercept, random_state
        As in `LinUCB`.
    """

    sampled: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        **_COMMON,
        "v": [Interval(float, 0, None, closed="neither")],
    }

    def __init__(
        self,
        n_actions: int,
        v: float = 0.3,
        l2: float = 1.0,
        fit_intercept: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(n_actions, l2, fit_intercept, random_state)
        self.v = v

    def _values(self, X: np.ndarray, gain: np.ndarray, cost: np.ndarray, n_draws: int) -> np.ndarray:
        mean, width = self._mean_width(X)
        z = self.rng_.standard_normal((X.shape[0], self.n_actions, n_draws))
        reward = mean[:, :, None] + float(self.v) * width[:, :, None] * z
        return np.asarray(reward * gain[:, :, None] - cost[:, :, None])


class LogisticTS(Bandit):
    """Thompson sampling from a Laplace-approximated Bayesian logistic regression per action.

    Parameters
    ----------
    n_actions : int
    alpha : float
        Scales the posterior standard deviation (1 = the Laplace posterior; Chapelle & Li found
        values below 1 to work well).
    l2 : float
        Prior precision of every weight.
    fit_intercept : bool
    random_state : int, numpy.random.Generator or None
    """

    contextual: ClassVar[bool] = True
    sampled: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        **_COMMON,
        "alpha": [Interval(float, 0, None, closed="neither")],
    }

    def __init__(
        self,
        n_actions: int,
        alpha: float = 1.0,
        l2: float = 1.0,
        fit_intercept: bool = True,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        super().__init__(n_actions, random_state)
        self.alpha = alpha
        self.l2 = l2
        self.fit_intercept = fit_intercept

    def _reset(self, dim: int) -> None:
        self.dim_ = dim
        self.m_ = np.zeros((self.n_actions, dim))
        self.q_ = np.full((self.n_actions, dim), float(self.l2))

    def _update(self, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        if not np.isin(rewards, (0.0, 1.0)).all():
            raise DataError("LogisticTS needs binary rewards (0 or 1).")
        for a in np.unique(actions):
            rows = actions == a
            Xa, y = X[rows], 2.0 * rewards[rows] - 1.0
            m, q = self.m_[a], self.q_[a]

            def loss(
                w: np.ndarray, Xa: np.ndarray = Xa, y: np.ndarray = y, m: np.ndarray = m, q: np.ndarray = q
            ) -> tuple[float, np.ndarray]:
                z = y * (Xa @ w)
                # log(1 + exp(-z)) without overflow, and its gradient
                value = 0.5 * float(np.sum(q * (w - m) ** 2)) + float(np.sum(np.logaddexp(0.0, -z)))
                grad = q * (w - m) - Xa.T @ (y * expit(-z))
                return value, grad

            w = minimize(loss, m, jac=True, method="L-BFGS-B").x
            p = expit(Xa @ w)
            self.m_[a] = w
            self.q_[a] = q + (Xa**2).T @ (p * (1.0 - p))

    def _values(self, X: np.ndarray, gain: np.ndarray, cost: np.ndarray, n_draws: int) -> np.ndarray:
        mean = X @ self.m_.T
        sd = float(self.alpha) * np.sqrt((X**2) @ (1.0 / self.q_).T)
        z = self.rng_.standard_normal((X.shape[0], self.n_actions, n_draws))
        reward = expit(mean[:, :, None] + sd[:, :, None] * z)
        return np.asarray(reward * gain[:, :, None] - cost[:, :, None])
