"""Uplift models for several treatments at once: S-, T- and X-learners on LightGBM.

With arms ``a = 0`` (control) ``, 1, ..., K`` and outcome ``Y``, each learner estimates the
outcome ``mu_a(x) = E[Y | x, a]`` and the uplift ``tau_a(x) = mu_a(x) - mu_0(x)``:

- S-learner: one model ``f(x, a)``; ``mu_a(x) = f(x, a)`` (the arm is a categorical feature).
- T-learner: one model per arm, each fitted on that arm's rows only.
- X-learner (Künzel et al. 2019): T-learner outcome models, then the imputed effects
  ``D1 = Y - mu_0(x)`` on treated rows and ``D0 = mu_a(x) - Y`` on control rows are regressed
  on ``x`` (``tau_1``, ``tau_0``) and combined as ``tau_a(x) = g tau_0(x) + (1 - g) tau_1(x)``
  with ``g`` the share of arm ``a`` among the rows of ``a`` and the control (its propensity on
  randomised data; any ``g`` in [0, 1] keeps the blend consistent).

Binary outcomes use LightGBM's binary objective (so ``mu`` are probabilities), continuous ones
least squares. References: S. R. Künzel, J. S. Sekhon, P. J. Bickel, B. Yu (2019), "Metalearners
for estimating heterogeneous treatment effects using machine learning", PNAS 116(10):4156-4165;
CausalML's ``BaseSLearner``/``BaseTLearner``/``BaseXLearner`` for the multi-treatment layout.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Self

import lightgbm as lgb
import numpy as np
import pandas as pd

from cartlift._params import Constraint, Interval, validate_params
from cartlift._random import check_random_state
from cartlift.act._frame import FrameEncoder
from cartlift.errors import DataError, InvalidParameterError, NotFittedError

__all__ = ["SLearner", "TLearner", "UpliftModel", "XLearner", "uplift_model_from_dict"]

_MIN_ROWS_PER_ARM = 2


class UpliftModel:
    """What the learners share: parameters, data checks, LightGBM training, prediction, saving.

    Parameters
    ----------
    n_estimators : int
        Boosting rounds of each LightGBM model.
    learning_rate : float
    num_leaves : int
        Leaves per tree. Uplift is a small difference between noisy outcomes, so the defaults
        are small trees with many rows per leaf (on 1,400 randomised rows they ranked the true
        uplift far better than LightGBM's own defaults).
    min_child_samples : int
        Rows a leaf needs at least (an arm with fewer rows gets a constant model).
    reg_lambda : float
        L2 penalty on leaf values.
    n_jobs : int
        LightGBM threads.
    random_state : int, numpy.random.Generator or None
        Seeds every model (same seed, same models).
    """

    kind: ClassVar[str] = ""
    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "n_estimators": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0, 1, closed="right")],
        "num_leaves": [Interval(int, 2, None)],
        "min_child_samples": [Interval(int, 1, None)],
        "reg_lambda": [Interval(float, 0, None)],
        "n_jobs": [Interval(int, 1, None)],
        "random_state": [None, int, np.random.Generator],
    }

    def __init__(
        self,
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 4,
        min_child_samples: int = 100,
        reg_lambda: float = 1.0,
        n_jobs: int = 1,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as given (without the random state's generator object)."""
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "reg_lambda": self.reg_lambda,
            "n_jobs": self.n_jobs,
            "random_state": self.random_state if isinstance(self.random_state, int) else None,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, X: Any, treatment: Any, y: Any, *, control: Any) -> Self:
        """Learn the outcome of every arm and the uplift of each treatment over ``control``.

        Parameters
        ----------
        X : DataFrame or 2-D array, shape (n, d)
            Features; text/categorical columns are encoded.
        treatment : array-like, shape (n,)
            The arm each row received.
        y : array-like, shape (n,)
            Outcome: binary (0/1 or bool) or continuous.
        control : object
            The control arm's value in ``treatment``.

        Returns
        -------
        self
        """
        validate_params(self)
        self._rng = check_random_state(self.random_state)
        arms = pd.Series(np.asarray(treatment, dtype=object).ravel())
        yv = np.asarray(y).ravel()
        self.encoder_ = FrameEncoder().fit(X)
        Xm = self.encoder_.transform(X)
        if not (len(arms) == len(yv) == Xm.shape[0]):
            raise DataError(
                f"X, treatment and y must have the same number of rows. Got {Xm.shape[0]}, {len(arms)} and {len(yv)}."
            )
        if arms.isna().any():
            raise DataError(
                f"treatment has {int(arms.isna().sum())} missing value(s); every row needs its arm."
            )
        yf = pd.to_numeric(pd.Series(yv), errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(yf).all():
            raise DataError("y must be numeric (or boolean) without missing values.")
        seen = list(dict.fromkeys(arms.tolist()))
        if control not in seen:
            raise DataError(f"The control {control!r} does not occur in treatment (values: {seen[:10]!r}).")
        counts = arms.value_counts()
        small = [str(a) for a in seen if counts[a] < _MIN_ROWS_PER_ARM]
        if small:
            raise DataError(
                f"Each arm needs at least {_MIN_ROWS_PER_ARM} rows; too few for: {', '.join(small)}."
            )
        if len(seen) < 2:
            raise DataError("treatment has only the control arm: at least one treatment is needed.")
        self.control_ = control
        self.treatments_ = sorted((a for a in seen if a != control), key=str)
        self.arms_ = [control, *self.treatments_]
        self.binary_ = bool(np.isin(yf, (0.0, 1.0)).all())
        self.n_features_in_ = Xm.shape[1]
        self.feature_names_in_ = list(self.encoder_.columns_)
        arm_index = pd.Index(self.arms_, dtype=object).get_indexer(arms.to_numpy())
        self._fit(Xm, arm_index, yf)
        return self

    def _fit(self, X: np.ndarray, arm: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _train(self, X: np.ndarray, y: np.ndarray, *, binary: bool, categorical: list[int]) -> lgb.Booster:
        params = {
            "objective": "binary" if binary else "regression",
            "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves),
            "min_data_in_leaf": int(self.min_child_samples),
            "lambda_l2": float(self.reg_lambda),
            "num_threads": int(self.n_jobs),
            "seed": int(self._rng.integers(0, 2**31 - 1)),
            "deterministic": True,
            "verbosity": -1,
            # small categorical groups are common in shop data (a rare device, a new channel)
            "min_data_per_group": 20,
            "cat_smooth": 10.0,
        }
        data = lgb.Dataset(X, label=y, categorical_feature=categorical or "auto", free_raw_data=True)
        return lgb.train(params, data, num_boost_round=int(self.n_estimators))

    # -- prediction ------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "arms_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(X, treatment, y) first."
            )

    def _matrix(self, X: Any) -> np.ndarray:
        self._check_fitted()
        if (
            isinstance(X, np.ndarray)
            and X.ndim == 2
            and X.dtype.kind == "f"
            and X.shape[1] == self.n_features_in_
        ):
            return X  # already encoded: the policy's fast path for single decisions
        return self.encoder_.transform(X)

    def predict_outcomes(self, X: Any) -> np.ndarray:
        """Expected outcome under each arm, shape (n, n_arms), columns in `arms_` order (control first)."""
        return self._outcomes(self._matrix(X))

    def _outcomes(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        """Uplift of each treatment over the control, shape (n, n_treatments), columns in `treatments_` order."""
        mu = self.predict_outcomes(X)
        return np.asarray(mu[:, 1:] - mu[:, :1])

    def _predict_booster(self, booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(X, num_threads=int(self.n_jobs)), dtype=float)

    # -- saving ----------------------------------------------------------------------------------
    def _boosters(self) -> dict[str, lgb.Booster]:
        raise NotImplementedError

    def _set_boosters(self, boosters: dict[str, lgb.Booster]) -> None:
        raise NotImplementedError

    def _extra(self) -> dict[str, Any]:
        return {}

    def _set_extra(self, data: dict[str, Any]) -> None:
        return None

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON-ready data (LightGBM models as text, no pickle)."""
        self._check_fitted()
        return {
            "kind": self.kind,
            "params": self.get_params(),
            "arms": [_plain(a) for a in self.arms_],
            "binary": self.binary_,
            "encoder": self.encoder_.to_dict(),
            "boosters": {k: b.model_to_string() for k, b in self._boosters().items()},
            "extra": self._extra(),
        }

    def to_json(self) -> str:
        """`to_dict` as JSON text."""
        return json.dumps(self.to_dict())


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class SLearner(UpliftModel):
    """One LightGBM model of the outcome on the features plus the arm (a categorical feature).

    Cheap and stable; tends to shrink small effects toward zero because the trees may ignore
    the arm. See `UpliftModel` for the parameters.

    Examples
    --------
    >>> model = SLearner(n_estimators=50, random_state=0)                 # doctest: +SKIP
    >>> model.fit(X, arms, bought, control="nothing").predict(X).shape    # doctest: +SKIP
    (1000, 8)
    """

    kind: ClassVar[str] = "s_learner"

    def _fit(self, X: np.ndarray, arm: np.ndarray, y: np.ndarray) -> None:
        cats = [*self.encoder_.categorical_indices, X.shape[1]]
        self.model_ = self._train(np.column_stack([X, arm]), y, binary=self.binary_, categorical=cats)

    def _outcomes(self, X: np.ndarray) -> np.ndarray:
        n, k = X.shape[0], len(self.arms_)
        stacked = np.column_stack([np.repeat(X, k, axis=0), np.tile(np.arange(k, dtype=float), n)])
        return self._predict_booster(self.model_, stacked).reshape(n, k)

    def _boosters(self) -> dict[str, lgb.Booster]:
        return {"model": self.model_}

    def _set_boosters(self, boosters: dict[str, lgb.Booster]) -> None:
        self.model_ = boosters["model"]


class TLearner(UpliftModel):
    """One LightGBM outcome model per arm, each fitted on that arm's rows.

    Captures effects the S-learner may miss, at the price of variance on small arms. See
    `UpliftModel` for the parameters.
    """

    kind: ClassVar[str] = "t_learner"

    def _fit(self, X: np.ndarray, arm: np.ndarray, y: np.ndarray) -> None:
        cats = self.encoder_.categorical_indices
        self.models_ = [
            self._train(X[arm == j], y[arm == j], binary=self.binary_, categorical=cats)
            for j in range(len(self.arms_))
        ]

    def _outcomes(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([self._predict_booster(m, X) for m in self.models_])

    def _boosters(self) -> dict[str, lgb.Booster]:
        return {str(j): m for j, m in enumerate(self.models_)}

    def _set_boosters(self, boosters: dict[str, lgb.Booster]) -> None:
        self.models_ = [boosters[str(j)] for j in range(len(boosters))]


class XLearner(TLearner):
    """T-learner outcome models plus effect models fitted on imputed individual effects.

    Uses the outcome models of `TLearner`, then regresses ``D1 = Y - mu_0(x)`` (treated rows) and
    ``D0 = mu_a(x) - Y`` (control rows) on ``x`` and blends the two effect models with the
    propensity ``g``: ``tau_a(x) = g tau_0(x) + (1 - g) tau_1(x)``. `predict_outcomes` returns
    ``mu_0(x)`` and ``mu_0(x) + tau_a(x)`` so outcomes and uplift agree. See `UpliftModel` for the
    parameters.
    """

    kind: ClassVar[str] = "x_learner"

    def _fit(self, X: np.ndarray, arm: np.ndarray, y: np.ndarray) -> None:
        super()._fit(X, arm, y)
        cats = self.encoder_.categorical_indices
        control = arm == 0
        self.effects_: list[tuple[lgb.Booster, lgb.Booster]] = []
        self.share_: list[float] = []
        for j in range(1, len(self.arms_)):
            treated = arm == j
            d1 = y[treated] - self._predict_booster(self.models_[0], X[treated])
            d0 = self._predict_booster(self.models_[j], X[control]) - y[control]
            tau1 = self._train(X[treated], d1, binary=False, categorical=cats)
            tau0 = self._train(X[control], d0, binary=False, categorical=cats)
            self.effects_.append((tau0, tau1))
            # any weight in [0, 1] gives a consistent blend; the arm's share is Künzel et al.'s
            # choice on randomised data (the propensity of the arm among the pair's rows)
            self.share_.append(float(treated.sum() / (treated.sum() + control.sum())))

    def _outcomes(self, X: np.ndarray) -> np.ndarray:
        mu0 = self._predict_booster(self.models_[0], X)
        cols = [mu0]
        for (tau0, tau1), g in zip(self.effects_, self.share_, strict=True):
            tau = g * self._predict_booster(tau0, X) + (1.0 - g) * self._predict_booster(tau1, X)
            cols.append(mu0 + tau)
        return np.column_stack(cols)

    def _boosters(self) -> dict[str, lgb.Booster]:
        out = super()._boosters()
        for j, (tau0, tau1) in enumerate(self.effects_, start=1):
            out[f"tau0_{j}"] = tau0
            out[f"tau1_{j}"] = tau1
        return out

    def _set_boosters(self, boosters: dict[str, lgb.Booster]) -> None:
        n_arms = sum(1 for k in boosters if k.isdigit())
        self.models_ = [boosters[str(j)] for j in range(n_arms)]
        self.effects_ = [(boosters[f"tau0_{j}"], boosters[f"tau1_{j}"]) for j in range(1, n_arms)]

    def _extra(self) -> dict[str, Any]:
        return {"share": self.share_}

    def _set_extra(self, data: dict[str, Any]) -> None:
        self.share_ = [float(g) for g in data["share"]]


_KINDS: dict[str, type[UpliftModel]] = {"s_learner": SLearner, "t_learner": TLearner, "x_learner": XLearner}


def uplift_model_from_dict(data: dict[str, Any]) -> UpliftModel:
    """Rebuild a fitted learner from `UpliftModel.to_dict` data."""
    kind = data.get("kind")
    if kind not in _KINDS:
        raise InvalidParameterError(f"Unknown uplift model kind {kind!r}. Known: {', '.join(_KINDS)}.")
    model = _KINDS[kind](**data["params"])
    model.arms_ = list(data["arms"])
    model.control_ = model.arms_[0]
    model.treatments_ = model.arms_[1:]
    model.binary_ = bool(data["binary"])
    model.encoder_ = FrameEncoder.from_dict(data["encoder"])
    model.n_features_in_ = len(model.encoder_.columns_)
    model.feature_names_in_ = list(model.encoder_.columns_)
    model._set_boosters({k: lgb.Booster(model_str=v) for k, v in data["boosters"].items()})
    model._set_extra(data.get("extra", {}))
    return model
