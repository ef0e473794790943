"""The profit policy: for each cart, the allowed action with the highest expected profit.

For cart ``i`` with value ``v_i``, gross margin ``m_i`` and features ``x_i``, action ``a`` is worth

    E[profit | a] = P(buy | a, x_i) * (m_i - discount_a(v_i)) - cost_a,

with ``P(buy | a, x)`` from a multi-treatment uplift model (`SLearner`, `TLearner` or `XLearner`)
fitted on randomised decisions, the control being "nothing". The policy takes the best action
the `Rules` allow at that moment (see `decide_in_order`) and records why. Optimising profit
rather than conversions is what keeps coupons away from customers who buy anyway.

`FixedPolicy` is the baseline family ("coupon for everyone", "reminder for everyone"):
it takes the first allowed action of a preference list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from cartlift._params import Constraint, Interval, Options, validate_params
from cartlift._random import check_random_state
from cartlift.act._actions import ActionCatalog
from cartlift.act._context import CONTEXT_FEATURES
from cartlift.act._decide import decide_in_order, decide_record
from cartlift.act._rules import Ledger, Rules
from cartlift.act._uplift import SLearner, TLearner, UpliftModel, XLearner, uplift_model_from_dict
from cartlift.errors import DataError, InvalidParameterError, NotFittedError

__all__ = ["FixedPolicy", "ProfitPolicy"]

_LEARNERS: dict[str, type[UpliftModel]] = {
    "s_learner": SLearner,
    "t_learner": TLearner,
    "x_learner": XLearner,
}


def _catalog(catalog: ActionCatalog | None) -> ActionCatalog:
    if catalog is None:
        return ActionCatalog()
    if not isinstance(catalog, ActionCatalog):
        raise InvalidParameterError(
            f"catalog must be an ActionCatalog or None. Got {type(catalog).__name__} instead."
        )
    return catalog


class ProfitPolicy:
    """Choose, for each abandoned cart, the allowed action with the highest expected profit.

    Parameters
    ----------
    learner : {"s_learner", "t_learner", "x_learner"}
        The uplift model of ``P(buy | action, features)``. The S-learner shares the baseline
        across actions, which matters when a few thousand randomised carts are split over nine
        actions (on the simulated store it earned 92-95 % of the oracle's profit, the T- and
        X-learners 88-92 %).
    catalog : ActionCatalog, optional
        Actions with their costs and discounts (default `DEFAULT_ACTIONS`).
    rules : Rules, optional
        Consent, quiet hours, caps and budgets (default `Rules()`).
    epsilon : float
        Share of decisions explored uniformly among the allowed actions, so the log keeps
        supporting off-policy evaluation and retraining (0 = always the best action).
    window_hours : float
        How long after a decision a purchase counts as its outcome.
    features : sequence of str, optional
        Context columns the model uses (default: those of `CONTEXT_FEATURES` present in ``fit``'s
        table).
    n_estimators, learning_rate, num_leaves, min_child_samples : int or float
        LightGBM settings of the learner; small trees with many rows per leaf, because the
        differences between actions are small next to the noise of a purchase.
    random_state : int, numpy.random.Generator or None
        Seeds the learner, tie-breaking and exploration.

    Examples
    --------
    >>> policy = ProfitPolicy(random_state=0).fit(contexts, actions, bought)   # doctest: +SKIP
    >>> policy.decide(new_carts)[["cart_id", "action", "reason"]]              # doctest: +SKIP
    """

    _parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "learner": [Options(tuple(_LEARNERS))],
        "catalog": [None, ActionCatalog],
        "rules": [None, Rules],
        "epsilon": [Interval(float, 0, 1)],
        "window_hours": [Interval(float, 0, None, closed="neither")],
        "features": [None, list, tuple],
        "n_estimators": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0, 1, closed="right")],
        "num_leaves": [Interval(int, 2, None)],
        "min_child_samples": [Interval(int, 1, None)],
        "random_state": [None, int, np.random.Generator],
    }

    def __init__(
        self,
        learner: str = "s_learner",
        catalog: ActionCatalog | None = None,
        rules: Rules | None = None,
        epsilon: float = 0.0,
        window_hours: float = 168.0,
        features: Sequence[str] | None = None,
        n_estimators: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 4,
        min_child_samples: int = 100,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.learner = learner
        self.catalog = catalog
        self.rules = rules
        self.epsilon = epsilon
        self.window_hours = window_hours
        self.features = features
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    name: ClassVar[str] = "profit"

    def fit(self, contexts: pd.DataFrame, actions: Any, purchased: Any) -> Self:
        """Fit ``P(buy | action, features)`` on randomised (or propensity-logged) decisions.

        Parameters
        ----------
        contexts : DataFrame, shape (n, ...)
            Cart contexts (`cart_contexts` or the logged snapshots).
        actions : array-like of str, shape (n,)
            Action taken for each cart (names of the catalog; the catalog's first action is the
            control).
        purchased : array-like of bool, shape (n,)
            Whether the cart was bought within the window.
        """
        validate_params(self)
        self.catalog_ = _catalog(self.catalog)
        self.rules_ = self.rules or Rules()
        self._rng = check_random_state(self.random_state)
        acts = np.asarray(actions, dtype=object).ravel()
        unknown = sorted({str(a) for a in acts} - set(self.catalog_.names))
        if unknown:
            raise DataError(f"actions holds names outside the catalog: {', '.join(unknown[:5])}.")
        cols = (
            list(self.features)
            if self.features is not None
            else [c for c in CONTEXT_FEATURES if c in contexts]
        )
        missing = [c for c in cols if c not in contexts]
        if missing or not cols:
            raise DataError(
                f"The contexts lack the feature column(s): {', '.join(missing) or 'all of them'}."
            )
        self.features_ = cols
        model_cls = _LEARNERS[self.learner]
        self.model_ = model_cls(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            random_state=self._rng,
        ).fit(contexts[cols], acts, np.asarray(purchased, dtype=float), control=self.catalog_.names[0])
        # actions never tried have no estimate: they are never chosen (their value is NaN)
        self.known_ = np.array([n in self.model_.arms_ for n in self.catalog_.names])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "This ProfitPolicy is not fitted yet; call fit(contexts, actions, purchased) first."
            )

    def predict_purchase(self, contexts: pd.DataFrame) -> np.ndarray:
        """``P(buy | a, x)`` per cart and catalog action, shape (n, n_actions); NaN for untried actions."""
        self._check_fitted()
        mu = np.clip(self.model_.predict_outcomes(contexts[self.features_]), 0.0, 1.0)
        out = np.full((len(contexts), len(self.catalog_)), np.nan)
        out[:, self.catalog_.indices(self.model_.arms_)] = mu
        return out

    def expected_profit(self, contexts: pd.DataFrame) -> np.ndarray:
        """``P(buy | a) (margin - discount_a) - cost_a`` per cart and action, shape (n, n_actions)."""
        p = self.predict_purchase(contexts)
        return self.catalog_.expected_profit(
            p,
            contexts["cart_value"].to_numpy(dtype=float),
            contexts["margin"].to_numpy(dtype=float),
            contexts["email_consent"].to_numpy(dtype=bool),
            contexts["sms_consent"].to_numpy(dtype=bool),
        )

    def decide(
        self,
        contexts: pd.DataFrame,
        ledger: Ledger | None = None,
        *,
        run_id: str | None = None,
        reasons: bool = True,
    ) -> pd.DataFrame:
        """Decide for each cart in time order under the rules; one row per cart (the ``decisions`` columns).

        Parameters
        ----------
        contexts : DataFrame
            Cart contexts, in the order the decisions happen.
        ledger : Ledger, optional
            What was already sent (default: an empty ledger with this policy's rules).
        """
        self._check_fitted()
        return decide_in_order(
            contexts,
            self.expected_profit(contexts),
            catalog=self.catalog_,
            ledger=ledger if ledger is not None else Ledger(rules=self.rules_),
            policy=self.name,
            rng=self._rng,
            epsilon=float(self.epsilon),
            window_hours=float(self.window_hours),
            run_id=run_id,
            reasons=reasons,
        )

    def decide_one(
        self, context: Mapping[str, Any], ledger: Ledger, *, decision_id: str | None = None
    ) -> dict[str, Any]:
        """Decide for one cart given as a plain record: the live path, without pandas.

        Parameters
        ----------
        context : mapping
            ``cart_id``, ``user_id``, ``ts`` (datetime or epoch seconds), ``cart_value``,
            ``margin``, ``email_consent``, ``sms_consent`` and the model's features.
        ledger : Ledger
            What was already sent; updated with this decision.
        decision_id : str, optional
            Default: a random UUID from the policy's generator.

        Returns
        -------
        dict
            ``decision_id``, ``action``, ``channel``, ``propensity``, ``expected_profit``,
            ``discount_value``, ``cost``, ``coupon_code``, ``coupon_expires_at`` (epoch s) and
            ``reason``, as `decide` would log them.
        """
        self._check_fitted()
        cat = self.catalog_
        mu = np.clip(self.model_._outcomes(self.model_.encoder_.transform_row(context))[0], 0.0, 1.0)
        p = np.full(len(cat), np.nan)
        p[self._arm_columns()] = mu
        value = float(context["cart_value"])
        gain = float(context["margin"]) - cat.discounts(np.array([value]))[0]
        cost = cat.costs(
            np.array([bool(context["email_consent"])]), np.array([bool(context["sms_consent"])])
        )[0]
        out = decide_record(
            context,
            p * gain - cost,
            catalog=cat,
            ledger=ledger,
            rng=self._rng,
            epsilon=float(self.epsilon),
            decision_id=decision_id,
        )
        out["expected_profit"] = out.pop("value")
        return out

    def _arm_columns(self) -> np.ndarray:
        if not hasattr(self, "_arm_cols"):
            self._arm_cols = self.catalog_.indices(self.model_.arms_)
        return self._arm_cols

    # -- saving ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted policy as JSON-ready data (catalog, rules, features and the uplift model)."""
        self._check_fitted()
        return {
            "kind": "profit_policy",
            "learner": self.learner,
            "epsilon": self.epsilon,
            "window_hours": self.window_hours,
            "catalog": self.catalog_.to_dicts(),
            "rules": self.rules_.to_dict(),
            "features": self.features_,
            "model": self.model_.to_dict(),
        }

    def to_json(self) -> str:
        """`to_dict` as JSON text."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], random_state: int | np.random.Generator | None = None
    ) -> ProfitPolicy:
        """Rebuild a fitted policy from `to_dict` data."""
        if data.get("kind") != "profit_policy":
            raise DataError(f"Not a saved ProfitPolicy (kind {data.get('kind')!r}).")
        catalog = ActionCatalog.from_dicts(data["catalog"])
        rules = Rules.from_dict(data["rules"])
        policy = cls(
            learner=data["learner"],
            catalog=catalog,
            rules=rules,
            epsilon=float(data["epsilon"]),
            window_hours=float(data["window_hours"]),
            features=list(data["features"]),
            random_state=random_state,
        )
        policy.catalog_, policy.rules_ = catalog, rules
        policy.features_ = list(data["features"])
        policy.model_ = uplift_model_from_dict(data["model"])
        policy.known_ = np.array([n in policy.model_.arms_ for n in catalog.names])
        policy._rng = check_random_state(random_state)
        return policy


class FixedPolicy:
    """The first allowed action of a preference list for every cart (a baseline).

    Parameters
    ----------
    name : str
        Logged as the policy name ("coupon_all", "reminder_all", "nothing").
    preferences : sequence of str
        Actions in order of preference; "nothing" is the implicit last resort.
    catalog : ActionCatalog, optional
    rules : Rules, optional
    random_state : int, numpy.random.Generator or None
    """

    def __init__(
        self,
        name: str,
        preferences: Sequence[str],
        catalog: ActionCatalog | None = None,
        rules: Rules | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.name = name
        self.preferences = preferences
        self.catalog = catalog
        self.rules = rules
        self.random_state = random_state

    def values(self, contexts: pd.DataFrame) -> np.ndarray:
        """Preference scores per cart and action: the first preference highest, unlisted actions NaN."""
        catalog = _catalog(self.catalog)
        row = np.full(len(catalog), np.nan)
        prefs = list(self.preferences)
        for rank, name in enumerate(prefs):
            row[catalog.index(name)] = float(len(prefs) - rank)
        if np.isnan(row[0]):
            row[0] = 0.0
        return np.tile(row, (len(contexts), 1))

    def decide(
        self,
        contexts: pd.DataFrame,
        ledger: Ledger | None = None,
        *,
        run_id: str | None = None,
        reasons: bool = True,
    ) -> pd.DataFrame:
        """Decide for each cart in time order under the rules (see `ProfitPolicy.decide`)."""
        catalog = _catalog(self.catalog)
        rules = self.rules or Rules()
        return decide_in_order(
            contexts,
            self.values(contexts),
            catalog=catalog,
            ledger=ledger if ledger is not None else Ledger(rules=rules),
            policy=self.name,
            rng=check_random_state(self.random_state),
            label="preference",
            run_id=run_id,
            reasons=reasons,
        )
