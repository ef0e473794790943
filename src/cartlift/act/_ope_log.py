"""Off-policy evaluation of a named policy on a decision log file: what `cartlift act ope` runs.

The log needs, per row, the action taken, its propensity and the reward (``purchased``,
``profit`` or any ``reward`` column); the other columns (or the JSON ``context`` column of an
exported ``decision_outcomes`` table) are the context for the reward model of DM/DR/SNDR. The
policies that can be evaluated:

- ``uniform``: every action of the log with equal probability;
- an action name: always that action;
- ``coupon_all``, ``reminder_all``: the baselines (reminder by e-mail with e-mail consent, else
  SMS with SMS consent, else nothing);
- ``profit``: the profit policy saved in the store (``--db``), restricted to the actions the
  customer's consents and the coupon minimum allow (the caps and budgets of a live run depend on
  the order of decisions and are not replayed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cartlift.act._actions import ActionCatalog
from cartlift.act._frame import FrameEncoder
from cartlift.act._log import contexts_from_log
from cartlift.act._ope import evaluate_policy
from cartlift.act._reward_model import fit_reward_model
from cartlift.act._workflows import load_policy, read_table
from cartlift.errors import DataError, InvalidParameterError
from cartlift.store import EventStore

__all__ = ["ope_from_log"]

_NOT_CONTEXT = {
    "decision_id", "ts", "user_id", "cart_id", "policy", "action", "channel", "propensity", "expected_profit",
    "discount_value", "cost", "coupon_code", "coupon_expires_at", "window_hours", "reason", "context", "run_id",
    "first_purchase_at", "revenue", "purchased", "redeemed", "profit", "matured", "reward",
}  # fmt: skip


def _context(frame: pd.DataFrame) -> pd.DataFrame:
    if "context" in frame.columns:
        ctx = contexts_from_log(frame)
        for col in ("cart_value", "margin"):
            if col in frame.columns and col not in ctx.columns:
                ctx[col] = frame[col].to_numpy()
        return ctx.reset_index(drop=True)
    return frame[[c for c in frame.columns if c not in _NOT_CONTEXT]].reset_index(drop=True)


def _matrix(ctx: pd.DataFrame) -> np.ndarray:
    if ctx.shape[1] == 0:
        return np.zeros((len(ctx), 1))
    X = FrameEncoder().fit_transform(ctx)
    # the reward model is linear: categories become their codes, missing values the column mean
    means = np.nan_to_num(np.nanmean(np.where(np.isfinite(X), X, np.nan), axis=0))
    return np.where(np.isfinite(X), X, means)


def _target(
    policy: str, actions: list[str], ctx: pd.DataFrame, store: EventStore | None, catalog: ActionCatalog
) -> np.ndarray:
    n, k = len(ctx), len(actions)
    index = {a: j for j, a in enumerate(actions)}
    dist = np.zeros((n, k))
    email = ctx["email_consent"].to_numpy(dtype=bool) if "email_consent" in ctx else np.ones(n, dtype=bool)
    sms = ctx["sms_consent"].to_numpy(dtype=bool) if "sms_consent" in ctx else np.zeros(n, dtype=bool)

    def need(name: str) -> int:
        if name not in index:
            raise DataError(
                f"The log never took action {name!r}, so a policy that takes it cannot be evaluated from it "
                f"(no overlap). Logged actions: {', '.join(actions)}."
            )
        return index[name]

    if policy == "uniform":
        dist[:] = 1.0 / k
    elif policy in index:
        dist[:, index[policy]] = 1.0
    elif policy == "coupon_all":
        dist[np.arange(n), need("coupon_10")] = 1.0
    elif policy == "reminder_all":
        choice = np.where(
            email, need("reminder_email_1h"), np.where(sms, need("reminder_sms_1h"), need("nothing"))
        )
        dist[np.arange(n), choice] = 1.0
    elif policy == "profit":
        if store is None:
            raise InvalidParameterError(
                "Evaluating the 'profit' policy needs the store it was trained in (--db)."
            )
        fitted = load_policy(store)
        missing = [c for c in (*fitted.features_, "cart_value", "margin") if c not in ctx.columns]
        if missing:
            raise DataError(f"The log lacks the context the profit policy needs: {', '.join(missing)}.")
        value = fitted.expected_profit(ctx)
        cat = fitted.catalog_
        ok = cat.reachable(email, sms)
        coupons = np.array([a.is_coupon for a in cat])
        ok &= ~(
            coupons[None, :]
            & (ctx["cart_value"].to_numpy(dtype=float) < fitted.rules_.min_cart_value_for_coupon)[:, None]
        )
        cols = [cat.index(a) for a in actions if a in cat.names]
        if len(cols) != k:
            raise DataError("The profit policy's catalog does not cover every logged action.")
        v = np.where(ok[:, cols] & np.isfinite(value[:, cols]), value[:, cols], -np.inf)
        dist[np.arange(n), v.argmax(axis=1)] = 1.0
    else:
        known = ", ".join(["uniform", "coupon_all", "reminder_all", "profit", *actions])
        raise InvalidParameterError(f"Unknown policy {policy!r}. Use one of: {known}.")
    return dist


def ope_from_log(
    log: str | Path | pd.DataFrame,
    *,
    policy: str,
    store: EventStore | None = None,
    reward: str | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Estimate a policy's value from a decision log with replay, DM, IPS, SNIPS, DR and SNDR.

    Parameters
    ----------
    log : str, Path or DataFrame
        The log: columns ``action``, ``propensity`` and the reward (see the module docstring).
    policy : str
        The policy to evaluate (see the module docstring).
    store : EventStore, optional
        Needed for ``profit`` (its saved policy).
    reward : str, optional
        Reward column (default ``reward``, else ``profit``, else ``purchased``).
    n_bootstrap, alpha, seed
        Bootstrap resamples, interval level and seed.

    Returns
    -------
    dict
        ``policy``, ``reward``, ``rows``, ``actions``, ``logged_value`` (the logging policy's mean
        reward) and ``estimates``: per estimator ``value``, ``ci_low``, ``ci_high``.
    """
    frame = log if isinstance(log, pd.DataFrame) else read_table(log)
    col = reward or next((c for c in ("reward", "profit", "purchased") if c in frame.columns), None)
    for need in ("action", "propensity", col):
        if need is None or need not in frame.columns:
            raise DataError(
                f"The log needs columns action, propensity and a reward (reward, profit or purchased). "
                f"Columns: {', '.join(map(str, frame.columns))}."
            )
    assert col is not None
    frame = frame.reset_index(drop=True)
    catalog = ActionCatalog()
    seen = [str(a) for a in pd.unique(frame["action"].astype(str))]
    actions = [a for a in catalog.names if a in seen] + sorted(a for a in seen if a not in catalog.names)
    action = pd.Index(actions).get_indexer(pd.Index(frame["action"].astype(str)))
    r = pd.to_numeric(frame[col], errors="coerce").astype(float).to_numpy()
    ctx = _context(frame)
    dist = _target(policy, actions, ctx, store, catalog)
    q = fit_reward_model(
        _matrix(ctx),
        action,
        r,
        n_actions=len(actions),
        base_model=make_pipeline(
            StandardScaler(),
            LogisticRegression(C=1.0, max_iter=2000) if np.isin(r, (0.0, 1.0)).all() else Ridge(alpha=1.0),
        ),
        n_folds=3,
        random_state=seed,
    )
    estimates = evaluate_policy(
        reward=r,
        action=action,
        pscore=frame["propensity"].to_numpy(dtype=float),
        action_dist=dist,
        estimated_rewards=q,
        n_bootstrap=n_bootstrap,
        alpha=alpha,
        random_state=seed,
    )
    return {
        "policy": policy,
        "reward": col,
        "rows": len(frame),
        "actions": actions,
        "logged_value": float(np.mean(r)),
        "estimates": estimates,
    }
