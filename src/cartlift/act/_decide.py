"""Turn a policy's value of each action into decisions, cart by cart in time order, under the rules.

Any policy gives, per cart, a value for every action (expected profit, a Thompson draw, an upper
confidence bound, a preference). `decide_in_order` walks the carts in time order, asks the
`Ledger` which actions are allowed *now* (caps and budgets depend on earlier decisions), takes
the best allowed action (ties broken at random), books it, and records why.

Propensity of the chosen action ``a`` among the allowed set ``E`` with ties ``B`` (best values):

- deterministic values: ``(1 - eps) 1[a in B] / |B| + eps / |E|``;
- sampled values (``S`` draws per cart, the first one decides): ``(1 - eps) k / S + eps / |E|``
  with ``k`` the draws whose best allowed action is ``a``, the deciding draw included (so the
  logged propensity of a greedy choice is never 0).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cartlift.act._actions import ActionCatalog
from cartlift.act._rules import Ledger, _epoch_seconds
from cartlift.errors import DataError

__all__ = ["choose_one", "decide_in_order", "decide_record", "reason_text"]

REQUIRED = ("cart_id", "user_id", "ts", "cart_value", "margin", "email_consent", "sms_consent")


def _check_contexts(contexts: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED if c not in contexts.columns]
    if missing:
        raise DataError(
            f"The cart contexts lack column(s) {', '.join(missing)}; build them with cart_contexts(store)."
        )


def decide_in_order(
    contexts: pd.DataFrame,
    values: np.ndarray,
    *,
    catalog: ActionCatalog,
    ledger: Ledger,
    policy: str,
    rng: np.random.Generator,
    epsilon: float = 0.0,
    window_hours: float = 168.0,
    label: str = "expected profit",
    run_id: str | None = None,
    reasons: bool = True,
    return_allowed: bool = False,
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """Decide for each cart (in the given order) and return one decision row per cart.

    Parameters
    ----------
    contexts : DataFrame, n rows
        cart_id, user_id, ts, cart_value, margin, email_consent, sms_consent (see `cart_contexts`).
    values : ndarray, shape (n, n_actions) or (n, n_actions, n_draws)
        The policy's value of each action; with draws, the first draw decides and all of them
        estimate the propensity.
    catalog : ActionCatalog
    ledger : Ledger
        Updated in place with every action taken.
    policy : str
        The policy's name, logged with each decision.
    rng : numpy.random.Generator
        Breaks ties, explores, and makes decision ids.
    epsilon : float
        Share of decisions taken uniformly at random among the allowed actions (exploration).
    window_hours : float
        Outcome window logged with each decision.
    label : str
        What the values are, for the recorded reason ("expected profit", "Thompson draw" ...).
    reasons : bool
        Write the human-readable reason (turn off for speed in large simulations).
    return_allowed : bool
        Also return which actions were allowed for each cart, as ``result.attrs["allowed"]``
        (bool array of shape (n, n_actions)).
    weights : ndarray, shape (n_actions,), optional
        How exploration picks among the allowed actions: with probability proportional to these
        weights (default: uniformly). ``epsilon=1`` with weights is a randomised rule policy.

    Returns
    -------
    DataFrame
        The columns of the ``decisions`` table (without ``context``).
    """
    _check_contexts(contexts)
    n, k = len(contexts), len(catalog)
    vals = np.asarray(values, dtype=float)
    if vals.ndim == 2:
        vals = vals[:, :, None]
    if vals.shape[:2] != (n, k):
        raise DataError(f"values must have shape (n_carts, n_actions) = ({n}, {k}). Got {values.shape}.")
    ts = _epoch_seconds(contexts["ts"])
    users = contexts["user_id"].astype(str).to_numpy()
    carts = contexts["cart_id"].astype(str).to_numpy()
    value = contexts["cart_value"].to_numpy(dtype=float)
    margin = contexts["margin"].to_numpy(dtype=float)
    email = contexts["email_consent"].to_numpy(dtype=bool)
    sms = contexts["sms_consent"].to_numpy(dtype=bool)
    names = catalog.names
    discounts = catalog.discounts(value)
    costs = catalog.costs(email, sms)
    chosen = np.zeros(n, dtype=np.int64)
    prop = np.ones(n)
    codes: list[str | None] = [None] * n
    expiry = np.full(n, np.nan)
    why: list[str | None] = [None] * n
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
    explore = rng.random(n) < epsilon
    allowed_all = np.zeros((n, k), dtype=bool)
    for i in range(n):
        blocked = ledger.allowed(
            catalog, ts=ts[i], user_id=users[i], cart_id=carts[i], value=value[i], email=email[i], sms=sms[i]
        )
        a, prop[i], ok = choose_one(vals[i], blocked, bool(explore[i]), epsilon, rng, weights)
        allowed_all[i] = ok
        chosen[i] = a
        code, exp = ledger.record(
            catalog[a],
            ts=ts[i],
            user_id=users[i],
            cart_id=carts[i],
            value=value[i],
            decision_id=ids[i],
            email=email[i],
            sms=sms[i],
        )
        codes[i] = code
        expiry[i] = np.nan if exp is None else exp
        if reasons:
            why[i] = reason_text(names, vals[i, :, 0], a, blocked, bool(explore[i]), epsilon, label)
    channel = np.array(
        [catalog[a].channel_of(bool(e), bool(s)) for a, e, s in zip(chosen, email, sms, strict=True)],
        dtype=object,
    )
    rows = np.arange(n)
    frame = pd.DataFrame(
        {
            "decision_id": ids,
            "ts": pd.to_datetime(contexts["ts"]).to_numpy(),
            "user_id": users,
            "cart_id": carts,
            "policy": policy,
            "action": np.array(names, dtype=object)[chosen],
            "channel": channel,
            "propensity": prop,
            "expected_profit": vals[rows, chosen, 0] if label == "expected profit" else np.nan,
            "cart_value": value,
            "margin": margin,
            "discount_value": discounts[rows, chosen],
            "cost": costs[rows, chosen],
            "coupon_code": codes,
            "coupon_expires_at": pd.to_datetime(expiry, unit="s"),
            "window_hours": float(window_hours),
            "reason": why,
            "run_id": run_id,
        }
    )
    if return_allowed:
        frame.attrs["allowed"] = allowed_all
    return frame


def decide_record(
    context: Mapping[str, Any],
    values: np.ndarray,
    *,
    catalog: ActionCatalog,
    ledger: Ledger,
    rng: np.random.Generator,
    epsilon: float = 0.0,
    label: str = "expected profit",
    decision_id: str | None = None,
) -> dict[str, Any]:
    """Decide for one cart given as a plain record: `decide_in_order` for one row, without pandas.

    Parameters
    ----------
    context : mapping
        ``cart_id``, ``user_id``, ``ts`` (datetime or epoch seconds), ``cart_value``, ``margin``,
        ``email_consent``, ``sms_consent``.
    values : ndarray, shape (n_actions,) or (n_actions, n_draws)
        The policy's values of the actions for this cart.
    catalog, ledger, rng, epsilon, label
        As in `decide_in_order`; the ledger is updated.
    decision_id : str, optional
        Default: a random UUID from ``rng``.

    Returns
    -------
    dict
        ``decision_id``, ``cart_id``, ``user_id``, ``action``, ``channel``, ``propensity``,
        ``value`` (of the chosen action), ``discount_value``, ``cost``, ``coupon_code``,
        ``coupon_expires_at`` (epoch s) and ``reason``.
    """
    v = np.asarray(values, dtype=float)
    v = v[:, None] if v.ndim == 1 else v
    ts = context["ts"]
    when = float(ts) if isinstance(ts, int | float) else float(pd.Timestamp(ts).timestamp())
    user, cart = str(context["user_id"]), str(context["cart_id"])
    value = float(context["cart_value"])
    email, sms = bool(context["email_consent"]), bool(context["sms_consent"])
    blocked = ledger.allowed(catalog, ts=when, user_id=user, cart_id=cart, value=value, email=email, sms=sms)
    explore = bool(rng.random() < epsilon) if epsilon else False
    a, prop, _ = choose_one(v, blocked, explore, epsilon, rng)
    did = decision_id or str(uuid.UUID(bytes=rng.bytes(16), version=4))
    action = catalog[a]
    code, expires = ledger.record(action, ts=when, user_id=user, cart_id=cart, value=value, decision_id=did)
    return {
        "decision_id": did,
        "cart_id": cart,
        "user_id": user,
        "action": action.name,
        "channel": action.channel_of(email, sms),
        "propensity": prop,
        "value": float(v[a, 0]),
        "discount_value": float(action.discount(value)),
        "cost": float(action.cost(email, sms)),
        "coupon_code": code,
        "coupon_expires_at": expires,
        "reason": reason_text(catalog.names, v[:, 0], a, blocked, explore, epsilon, label),
    }


def choose_one(
    values: np.ndarray,
    blocked: list[str],
    explore: bool,
    epsilon: float,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> tuple[int, float, np.ndarray]:
    """The action for one cart: best allowed value (ties at random) or, when exploring, a random allowed one.

    Parameters
    ----------
    values : ndarray, shape (n_actions, n_draws)
        The policy's values; the first draw decides.
    blocked : list of str
        Per action, why it is not allowed ("" when it is); doing nothing is always allowed.
    weights : ndarray, shape (n_actions,), optional
        Exploration picks an allowed action with probability proportional to its weight
        (default: uniformly); the propensity's exploration term is ``eps w_a / sum_E w``.

    Returns
    -------
    action, propensity, allowed mask
    """
    ok = np.array([b == "" for b in blocked])
    ok[0] = True
    allowed = np.flatnonzero(ok)
    v = values[:, 0]
    finite = allowed[np.isfinite(v[allowed])]
    pool = finite if finite.size else allowed[:1]
    best = v[pool].max() if finite.size else 0.0
    ties = pool[v[pool] >= best - 1e-9 * max(1.0, abs(best))]
    share = np.full(allowed.size, 1.0 / allowed.size)
    if weights is not None:
        w = np.asarray(weights, dtype=float)[allowed]
        share = w / w.sum() if w.sum() > 0 else share
    if explore:
        # without weights the draw is the one it always was, so seeded runs keep their numbers
        a = int(rng.choice(allowed)) if weights is None else int(allowed[rng.choice(allowed.size, p=share)])
    else:
        a = int(ties[rng.integers(ties.size)]) if ties.size > 1 else int(ties[0])
    if values.shape[1] > 1:
        # the greedy choice's probability: the share of all draws (the deciding one included)
        # whose best allowed action is a
        draws = values[allowed]
        wins = allowed[np.argmax(np.where(np.isfinite(draws), draws, -np.inf), axis=0)]
        greedy = float(np.mean(wins == a))
    else:
        greedy = (1.0 / ties.size) if a in ties else 0.0
    explored_share = float(share[np.searchsorted(allowed, a)])
    return a, (1.0 - epsilon) * greedy + epsilon * explored_share, ok


def reason_text(
    names: list[str], v: np.ndarray, a: int, blocked: list[str], explored: bool, epsilon: float, label: str
) -> str:
    """Why action ``a`` was taken: its value against doing nothing, and what the rules ruled out."""
    if explored:
        head = f"{names[a]}: exploring (epsilon {epsilon:g}), a random allowed action"
    elif a == 0:
        head = f"{names[a]}: {label} {_num(v[0])}, no allowed action does better"
    else:
        head = f"{names[a]}: {label} {_num(v[a])} vs nothing {_num(v[0])}"
    groups: dict[str, list[str]] = {}
    for name, why in zip(names, blocked, strict=True):
        if why:
            groups.setdefault(why, []).append(name)
    if not groups:
        return head
    ruled = "; ".join(f"{why} ({', '.join(acts)})" for why, acts in groups.items())
    return f"{head}; not allowed: {ruled}"


def _num(x: Any) -> str:
    return f"{float(x):.2f}" if np.isfinite(x) else "unknown"
