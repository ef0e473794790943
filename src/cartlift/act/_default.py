"""The policy a fresh store decides with: hand-set rules, randomised with known propensities.

A store with no logged outcomes has nothing to learn from, so `DefaultPolicy` decides the way
stores set up cart recovery by hand (mostly a reminder e-mail an hour after the cart, sometimes
a second-day reminder or a small coupon), but draws the action at random with fixed weights among
the actions the rules allow. Every decision is logged with its exact propensity
``w_a / sum_{b in allowed} w_b``, so the profit policy can later be trained on these decisions
(inverse-propensity weighting has full support) and evaluated off-policy against them.

The hand-over (`handover_status`): once at least ``HANDOVER_MIN_DECISIONS`` decisions have a
matured outcome (their window closed) and at least ``HANDOVER_MIN_PURCHASES`` of them ended in a
purchase, `decide_cart` trains the profit policy on the log and decides with it from then on.

Whichever policy decides, the global holdout comes first: `decide_with_holdout` does for a batch
of carts what `decide_cart` does for one (held-out carts get "nothing", every cart's group is
recorded with its decision), so the program's impact can be measured against the holdout.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final, Protocol

import numpy as np
import pandas as pd

from cartlift._random import check_random_state
from cartlift.act._actions import ActionCatalog
from cartlift.act._decide import decide_in_order
from cartlift.act._holdout import current_holdout, held_out_decision, record_assignments
from cartlift.act._log import log_decisions
from cartlift.act._rules import Ledger, Rules
from cartlift.store import EventStore

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_WEIGHTS",
    "HANDOVER_MIN_DECISIONS",
    "HANDOVER_MIN_PURCHASES",
    "DefaultPolicy",
    "decide_with_holdout",
]

DEFAULT_POLICY: Final = "default"
"""The name decisions of `DefaultPolicy` are logged under."""

DEFAULT_WEIGHTS: Final[Mapping[str, float]] = {
    "nothing": 0.15,
    "reminder_email_1h": 0.35,
    "reminder_email_24h": 0.15,
    "reminder_sms_1h": 0.05,
    "coupon_5": 0.08,
    "coupon_10": 0.08,
    "coupon_15": 0.04,
    "limited_time_offer": 0.05,
    "recommendation_block": 0.05,
}
"""Weights of the default actions: a reminder e-mail after one hour in about a third of the carts,
a holdout of about 15 % that gets nothing, and every other action often enough to learn its effect."""

HANDOVER_MIN_DECISIONS: Final = 1_000
"""Matured decisions needed before the profit policy takes over from the default."""
HANDOVER_MIN_PURCHASES: Final = 100
"""Purchases among them: below this the uplift model has too few positives per action to rank carts."""


class DefaultPolicy:
    """Randomised hand-set rules: each allowed action with probability proportional to its weight.

    Parameters
    ----------
    weights : mapping of str to float, optional
        Weight per action name (default `DEFAULT_WEIGHTS`); actions not named get weight 0,
        except doing nothing, which always stays possible.
    catalog : ActionCatalog, optional
    rules : Rules, optional
    random_state : int, numpy.random.Generator or None
    """

    name = DEFAULT_POLICY

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        catalog: ActionCatalog | None = None,
        rules: Rules | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.weights = weights
        self.catalog = catalog
        self.rules = rules
        self.random_state = random_state
        self.catalog_ = catalog if catalog is not None else ActionCatalog()
        self.rules_ = rules if rules is not None else Rules()
        self.features_: list[str] = []
        self._rng = check_random_state(random_state)

    def weight_vector(self) -> np.ndarray:
        """The weights in catalog order (nothing keeps a tiny weight so it is always possible)."""
        w = dict(DEFAULT_WEIGHTS if self.weights is None else self.weights)
        out = np.array([float(w.get(name, 0.0)) for name in self.catalog_.names])
        out[0] = max(out[0], 1e-6)
        return out

    def decide(
        self, contexts: pd.DataFrame, ledger: Ledger | None = None, *, run_id: str | None = None
    ) -> pd.DataFrame:
        """One decision per cart in time order, drawn among the allowed actions (see `decide_in_order`)."""
        frame = decide_in_order(
            contexts,
            np.zeros((len(contexts), len(self.catalog_))),
            catalog=self.catalog_,
            ledger=ledger if ledger is not None else Ledger(rules=self.rules_),
            policy=self.name,
            rng=self._rng,
            epsilon=1.0,
            label="default rules",
            run_id=run_id,
            weights=self.weight_vector(),
        )
        # the generic reason says "exploring"; here every decision is a draw by design
        frame["reason"] = [
            f"{a}: default rules (no learned policy yet), drawn with probability {p:.2f}"
            + (f"; not allowed:{r.split('; not allowed:', 1)[1]}" if r and "; not allowed:" in r else "")
            for a, p, r in zip(frame["action"], frame["propensity"], frame["reason"], strict=True)
        ]
        return frame

    def options(self) -> dict[str, dict[str, Any]]:
        """Per action its weight (what `decide_cart` shows instead of predicted profits)."""
        w = self.weight_vector()
        total = float(w.sum())
        return {
            n: {"p_buy": None, "expected_profit": None, "weight": float(w[j] / total)}
            for j, n in enumerate(self.catalog_.names)
        }


class _Deciding(Protocol):
    """What `decide_with_holdout` needs of a policy (`DefaultPolicy`, `ProfitPolicy`)."""

    features_: list[str]

    def decide(self, contexts: pd.DataFrame, ledger: Ledger | None = ...) -> pd.DataFrame: ...


def decide_with_holdout(
    store: EventStore,
    policy: _Deciding,
    contexts: pd.DataFrame,
    ledger: Ledger | None = None,
    *,
    features: list[str] | None = None,
) -> pd.DataFrame:
    """Decide for a batch of abandoned carts with the global holdout first, and log it all.

    A cart the holdout phase in force holds out (`cartlift.act.current_holdout`) gets "nothing"
    (policy ``holdout``, channel ``none``, propensity 1: never messaged); the others are decided
    by ``policy`` under ``ledger`` (held-out carts book nothing in it). Every decision is logged
    with the context features it saw, and every cart's group is recorded with its decision
    (``holdout_assignments``), as `decide_cart` does for one cart.

    Parameters
    ----------
    contexts : DataFrame, n rows
        `cart_contexts` of the carts.
    features : list of str, optional
        Context columns logged with each decision (default: the policy's ``features_``, else all).

    Returns
    -------
    DataFrame, n rows
        The decisions (columns of the ``decisions`` table), in the order of ``contexts``.
    """
    holdout = current_holdout(store)
    held = holdout.assign(contexts["cart_id"])
    treated = contexts[~held].reset_index(drop=True)
    decided = policy.decide(treated, ledger) if len(treated) else pd.DataFrame()
    out = contexts[held].reset_index(drop=True)
    held_rows = pd.DataFrame(
        held_out_decision(
            holdout,
            decision_id=[str(uuid.uuid4()) for _ in range(len(out))],
            ts=pd.to_datetime(out["ts"]).to_numpy(),
            user_id=out["user_id"].astype(str).to_numpy(),
            cart_id=out["cart_id"].astype(str).to_numpy(),
            cart_value=out["cart_value"].to_numpy(dtype=float),
            margin=out["margin"].to_numpy(dtype=float),
            coupon_expires_at=pd.NaT,
            window_hours=float(getattr(policy, "window_hours", 168.0)),
        )
    )
    frames = [f for f in (decided, held_rows) if len(f)]
    if not frames:
        return held_rows
    decisions = pd.concat(frames, ignore_index=True)
    order = pd.Series(range(len(contexts)), index=contexts["cart_id"].astype(str).to_numpy())
    decisions = decisions.iloc[np.argsort(order[decisions["cart_id"].astype(str)].to_numpy())]
    decisions = decisions.reset_index(drop=True)
    kept = [c for c in (features or policy.features_ or list(contexts.columns)) if c in contexts.columns]
    log_decisions(store, decisions, context=contexts[kept].reset_index(drop=True))
    record_assignments(store, holdout, decisions)  # one statement for the batch, not one per cart
    return decisions
