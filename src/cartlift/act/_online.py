"""A bandit learning live on the simulated store, and its regret day by day.

The Beta-Bernoulli Thompson-sampling bandit learns each action's purchase rate ``r_a`` and
decides on profit: ``value_a = r_a * (margin - discount_a) - cost_a`` with ``r_a`` drawn from its
posterior. It decides for each day's carts in time order under the rules and learns at the end
of the day from that day's outcomes (drawn from the truth).

Its regret on cart ``i`` is measured with the true expected profit ``V_i(a)``, and how the
cumulative regret ``R(n)`` grows with the number of decisions ``n`` is summarised by the slope
``k`` of ``log R`` on ``log n`` across the days (``R ~ n^k``; ``k < 1`` is sub-linear growth):

- ``regret = V_i(c_i) - V_i(b_i)`` against the best policy of the bandit's own class, the same
  rule with the true mean purchase rates ``rbar_a`` (the mean of ``P(buy | a)`` over carts the
  action can reach) in place of the draws: this regret grows sub-linearly when the bandit learns;
- ``regret_vs_oracle = max_a V_i(a) - V_i(b_i)`` over the allowed actions: the oracle also knows
  each customer, so this one keeps growing by the value of personal information.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from cartlift.act._actions import ActionCatalog
from cartlift.act._bandits import BetaBernoulliTS
from cartlift.act._decide import decide_in_order
from cartlift.act._rules import Ledger, Rules, _epoch_seconds

__all__ = ["run_bandit"]


def run_bandit(
    contexts: pd.DataFrame,
    p_true: np.ndarray,
    *,
    catalog: ActionCatalog,
    rules: Rules,
    train_rows: np.ndarray,
    start: datetime,
    rng: np.random.Generator,
    n_draws: int = 50,
) -> dict[str, Any]:
    """Run Beta-Bernoulli Thompson sampling over all carts, day by day; see the module docstring.

    Returns
    -------
    dict
        ``actions`` (chosen action index per cart, in ``contexts`` order), ``propensities`` and
        ``regret``: per day the carts, regret (in all and per cart) and cumulative regret (both
        definitions), the mean regret per cart in the first and second half of the days, and
        ``growth_exponent`` ``k``.
    """
    n, k = len(contexts), len(catalog)
    value = contexts["cart_value"].to_numpy(dtype=float)
    margin = contexts["margin"].to_numpy(dtype=float)
    email = contexts["email_consent"].to_numpy(dtype=bool)
    sms = contexts["sms_consent"].to_numpy(dtype=bool)
    gain = margin[:, None] - catalog.discounts(value)
    cost = catalog.costs(email, sms)
    truth = p_true * gain - cost
    reach = catalog.reachable(email, sms)
    rbar = np.array([p_true[reach[:, a], a].mean() if reach[:, a].any() else 0.0 for a in range(k)])
    day = ((_epoch_seconds(contexts["ts"]) - start.timestamp()) // 86_400).astype(np.int64)
    bandit = BetaBernoulliTS(n_actions=k, random_state=rng).partial_fit(None, np.zeros(0, dtype=np.int64), [])
    ledger = Ledger(rules=rules)
    actions = np.zeros(n, dtype=np.int64)
    props = np.ones(n)
    per_day = []
    cum = cum_oracle = 0.0
    for d in np.unique(day):
        rows = np.flatnonzero(day == d)
        values = bandit.values(None, gain[rows], cost[rows], n=rows.size, n_draws=n_draws)
        made = decide_in_order(
            contexts.iloc[rows],
            values,
            catalog=catalog,
            ledger=ledger,
            policy="thompson",
            rng=rng,
            label="Thompson draw",
            reasons=False,
            return_allowed=True,
        )
        allowed = made.attrs["allowed"]
        a = catalog.indices(made["action"])
        actions[rows], props[rows] = a, made["propensity"].to_numpy()
        bought = rng.random(rows.size) < p_true[rows, a]
        bandit.partial_fit(None, a, bought.astype(float))
        idx = np.arange(rows.size)
        got = truth[rows, a]
        best = np.where(allowed, truth[rows], -np.inf).max(axis=1)
        comp = np.where(allowed, rbar * gain[rows] - cost[rows], -np.inf).argmax(axis=1)
        r = float(np.sum(truth[rows][idx, comp] - got))
        r_oracle = float(np.sum(best - got))
        cum += r
        cum_oracle += r_oracle
        per_day.append(
            {
                "day": int(d),
                "phase": "train" if train_rows[rows].all() else "test",
                "carts": int(rows.size),
                "regret": r,
                "regret_per_cart": r / rows.size,
                "cumulative_regret": cum,
                "regret_vs_oracle": r_oracle,
                "cumulative_regret_vs_oracle": cum_oracle,
            }
        )
    half = len(per_day) // 2
    first, second = per_day[:half], per_day[half:]

    def per_cart(part: list[dict[str, Any]]) -> float:
        carts = sum(p["carts"] for p in part)
        return sum(p["regret"] for p in part) / carts if carts else float("nan")

    # cumulative regret ~ c * (decisions so far)^k: k < 1 is sub-linear growth
    carts = np.cumsum([p["carts"] for p in per_day])
    cum_regret = np.array([p["cumulative_regret"] for p in per_day])
    fit = (np.arange(len(per_day)) >= 1) & (cum_regret > 0)
    exponent = (
        float(np.polyfit(np.log(carts[fit]), np.log(cum_regret[fit]), 1)[0])
        if fit.sum() >= 3
        else float("nan")
    )
    return {
        "actions": actions,
        "propensities": props,
        "regret": {
            "policy": "thompson (Beta-Bernoulli, profit-aware)",
            "per_day": per_day,
            "regret_per_cart_first_half": per_cart(first),
            "regret_per_cart_second_half": per_cart(second),
            "growth_exponent": exponent,
            "posterior_means": dict(zip(catalog.names, bandit.means_.round(4).tolist(), strict=True)),
            "true_mean_rates": dict(zip(catalog.names, rbar.round(4).tolist(), strict=True)),
        },
    }
