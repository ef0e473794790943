"""Run policies against a simulated store's true reactions: the proof that the profit policy pays.

The protocol (`run_simulation`):

1. simulate a store for ``train_days + days`` days and load it into a scratch store: products,
   events *without* the simulator's unprompted return visits (outcomes come from the actions
   instead), and the customers' consents;
2. exploration, on the carts abandoned during the first ``train_days``: a uniformly random
   allowed action per cart, logged to ``decisions`` with its propensity and context; whether
   each cart is then bought is drawn from the simulator's truth for that action and written as
   purchase events, so the outcomes are joined back from events like in a real store;
3. the profit policy is trained on that log (``decision_outcomes``);
4. every policy decides for the carts of the last ``days`` days under the same rules, each with
   a fresh `Ledger`, and is scored with the *true* purchase probabilities of the actions it
   chose (expected values, no draw noise): ``profit = P(buy | a) (margin - discount_a) -
   cost_a``. The oracle knows those probabilities and picks the best allowed action: the ceiling.
5. a Thompson-sampling bandit runs from day 0 over all days, learning at the end of each day
   from that day's drawn outcomes; its regret per day is reported (see `_online.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from cartlift._random import RandomState, check_random_state
from cartlift.act._actions import ActionCatalog
from cartlift.act._context import CONTEXT_FEATURES, cart_contexts, cart_lines
from cartlift.act._decide import decide_in_order
from cartlift.act._log import contexts_from_log, decision_outcomes, log_decisions
from cartlift.act._online import run_bandit
from cartlift.act._policy import FixedPolicy, ProfitPolicy
from cartlift.act._rules import Ledger, Rules
from cartlift.act._uplift_metrics import true_qini_score
from cartlift.errors import InvalidParameterError
from cartlift.simulate import ACTIONS, simulate
from cartlift.store import EventStore

__all__ = ["BASELINES", "POLICIES", "run_simulation", "score_decisions"]

BASELINES: dict[str, list[str]] = {
    "nothing": ["nothing"],
    "coupon_all": ["coupon_10"],
    "reminder_all": ["reminder_email_1h", "reminder_sms_1h"],
}
"""The baselines: "nothing", "coupon for everyone" (10 %), "reminder for everyone" (e-mail, else SMS)."""

POLICIES = ("oracle", *BASELINES, "profit", "thompson")
"""Policies `run_simulation` can run."""

ProgressCallback = Callable[[str, float], None]


def _start(total_days: int) -> datetime:
    # the simulator's default start, unless the whole run (plus the outcome window) would end in
    # the future: a store rejects events from the future
    default = datetime(2026, 1, 1, tzinfo=UTC)
    latest = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=total_days + 9
    )
    return min(default, latest)


def _load(store: EventStore, sim: Any) -> None:
    """Products, events without the unprompted return visits, and consents."""
    sessions = sim.truth["truth_sessions"]
    returns = sessions.filter(pc.equal(sessions["kind"], "return_visit"))["session_id"]
    events = sim.events.filter(
        pc.invert(pc.is_in(sim.events["session_id"], value_set=returns.combine_chunks()))
    )
    store.ingest_products(sim.products)
    store.ingest_records(events, source="simulation")
    users = sim.truth["truth_users"].select(["user_id", "email_consent", "sms_consent"])
    store.con.register("_act_users", users)
    try:
        store.con.execute(
            "CREATE OR REPLACE TABLE consents AS SELECT user_id, email_consent AS email, sms_consent AS sms "
            "FROM _act_users"
        )
    finally:
        store.con.unregister("_act_users")


def _truth(sim: Any, carts: pd.DataFrame, catalog: ActionCatalog) -> np.ndarray:
    """True P(buy | a) per cart (rows of ``carts``) and catalog action."""
    truth = sim.truth["truth_carts"]
    index = pd.Index(truth["cart_id"].to_pylist()).get_indexer(carts["cart_id"].astype(str))
    if (index < 0).any():
        raise InvalidParameterError(
            "Some abandoned carts of the scratch store have no simulated truth: pass an empty store."
        )
    return np.column_stack([np.asarray(truth[f"p_{a}"].to_numpy())[index] for a in catalog.names])


def _outcome_events(
    decisions: pd.DataFrame,
    bought: np.ndarray,
    lines: pd.DataFrame,
    rng: np.random.Generator,
    window_h: float,
) -> pd.DataFrame:
    """Purchase events for the bought carts, some hours after the decision (inside the window)."""
    d = decisions.loc[bought, ["decision_id", "ts", "user_id", "cart_id"]].copy()
    # most recovered carts are bought within a day; none after the window
    delay_h = np.minimum(0.25 + rng.exponential(12.0, len(d)), window_h - 0.5)
    d["when"] = pd.to_datetime(d["ts"]) + pd.to_timedelta(delay_h, unit="h")
    rows = d.merge(lines, on="cart_id")
    return pd.DataFrame(
        {
            "event_id": "act-" + rows["decision_id"] + "-" + rows["product_id"].astype(str),
            "ts": rows["when"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "user_id": rows["user_id"],
            "session_id": "act-" + rows["decision_id"],
            "event_type": "purchase",
            "product_id": rows["product_id"].astype(str),
            "quantity": rows["quantity"].astype(int).astype(str),
            "price": rows["price"].astype(float).map(repr),
            "order_id": "act-" + rows["decision_id"],
        }
    )


def score_decisions(
    actions: np.ndarray, contexts: pd.DataFrame, p_true: np.ndarray, catalog: ActionCatalog
) -> dict[str, Any]:
    """Expected outcome of chosen actions under the true purchase probabilities.

    Returns ``carts``, ``conversion``, ``profit_per_cart``, ``revenue_per_cart``,
    ``discount_spent`` (expected money given away in all), ``discount_per_cart``, ``messages``,
    ``coupons`` and ``actions`` (count per action).
    """
    rows = np.arange(len(actions))
    value = contexts["cart_value"].to_numpy(dtype=float)
    margin = contexts["margin"].to_numpy(dtype=float)
    email = contexts["email_consent"].to_numpy(dtype=bool)
    sms = contexts["sms_consent"].to_numpy(dtype=bool)
    p = p_true[rows, actions]
    disc = catalog.discounts(value)[rows, actions]
    cost = catalog.costs(email, sms)[rows, actions]
    profit = p * (margin - disc) - cost
    n = max(len(actions), 1)
    names = np.array(catalog.names, dtype=object)[actions]
    return {
        "carts": len(actions),
        "conversion": float(p.sum() / n),
        "profit_per_cart": float(profit.sum() / n),
        "revenue_per_cart": float((p * (value - disc)).sum() / n),
        "discount_spent": float((p * disc).sum()),
        "discount_per_cart": float((p * disc).sum() / n),
        "messages": int(sum(catalog[a].is_message for a in actions)),
        "coupons": int(sum(catalog[a].is_coupon for a in actions)),
        "actions": {str(k): int(v) for k, v in pd.Series(names).value_counts().items()},
    }


def run_simulation(
    *,
    n_users: int = 40_000,
    train_days: int = 28,
    days: int = 7,
    policies: Sequence[str] | None = None,
    learner: str = "s_learner",
    rules: Rules | None = None,
    catalog: ActionCatalog | None = None,
    random_state: RandomState = 0,
    store: EventStore | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Simulate a store, explore, train the profit policy and score every policy on the true reactions.

    Parameters
    ----------
    n_users : int
        Simulated customers.
    train_days : int
        Days of randomised exploration the profit policy learns from.
    days : int
        Days the policies are compared on.
    policies : sequence of str, optional
        Subset of `POLICIES` (the oracle always runs: it is the yardstick).
    learner : {"s_learner", "t_learner", "x_learner"}
        The profit policy's uplift model.
    rules : Rules, optional
        Constraints every policy obeys (default `Rules()`).
    catalog : ActionCatalog, optional
        Must use the simulator's action names (default `DEFAULT_ACTIONS`).
    random_state : int, numpy.random.Generator or None
        Seeds the simulation, exploration, outcomes and models.
    store : EventStore, optional
        An empty scratch store to use (default an in-memory one); it receives the events, the
        consents, the ``decisions`` log and the outcome events.
    progress : callable, optional
        ``progress(label, percent)``.

    Returns
    -------
    dict
        ``policies`` (per policy: the keys of `score_decisions` plus ``share_of_oracle``),
        ``bandit`` (regret per day), ``uplift`` (Qini against the true uplift per action),
        ``training`` (logged decisions, purchase rate) and ``setup``.
    """
    if not (isinstance(train_days, int) and train_days >= 1 and isinstance(days, int) and days >= 1):
        raise InvalidParameterError(
            f"train_days and days must be ints >= 1. Got {train_days!r} and {days!r}."
        )
    chosen = list(POLICIES if policies is None else policies)
    unknown = sorted(set(chosen) - set(POLICIES))
    if unknown:
        raise InvalidParameterError(
            f"Unknown policy {', '.join(unknown)}. Use one of: {', '.join(POLICIES)}."
        )
    if "oracle" not in chosen:
        chosen.insert(0, "oracle")
    report = progress or (lambda label, pct: None)
    began = time.perf_counter()
    rng = check_random_state(random_state)
    catalog = catalog or ActionCatalog()
    foreign = [a for a in catalog.names if a not in ACTIONS]
    if foreign:
        raise InvalidParameterError(
            f"The simulator knows how customers react to {', '.join(ACTIONS)} only; the catalog also has "
            f"{', '.join(foreign)}."
        )
    rules = rules or Rules()
    total = train_days + days
    start = _start(total)
    seed = int(rng.integers(0, 2**31 - 1))
    report("simulating", 0.0)
    sim = simulate(n_users=n_users, n_days=total, start=start, random_state=seed)
    own = store is None
    scratch: EventStore = EventStore(":memory:") if store is None else store
    try:
        _load(scratch, sim)
        report("simulating", 100.0)
        contexts = cart_contexts(scratch)
        p_true = _truth(sim, contexts, catalog)
        split = pd.Timestamp(start.replace(tzinfo=None)) + pd.Timedelta(days=train_days)
        is_train = (contexts["ts"] < split).to_numpy()
        train, test = contexts[is_train].reset_index(drop=True), contexts[~is_train].reset_index(drop=True)
        p_train, p_test = p_true[is_train], p_true[~is_train]
        window_h = 24.0 * sim.config.outcome_window_days

        # exploration: uniformly random allowed actions, outcomes drawn from the truth
        report("exploring", 0.0)
        explore = decide_in_order(
            train,
            np.zeros((len(train), len(catalog))),
            catalog=catalog,
            ledger=Ledger(rules=rules),
            policy="explore",
            rng=rng,
            epsilon=1.0,
            window_hours=window_h,
            label="random",
        )
        acts = catalog.indices(explore["action"])
        bought = rng.random(len(train)) < p_train[np.arange(len(train)), acts]
        log_decisions(scratch, explore, context=train[list(CONTEXT_FEATURES)])
        lines = cart_lines(scratch, train["cart_id"].tolist())
        scratch.ingest_records(_outcome_events(explore, bought, lines, rng, window_h), source="act-outcomes")
        logged = decision_outcomes(scratch, policies=["explore"], matured_only=False)
        report("exploring", 100.0)

        report("training", 0.0)
        learned = contexts_from_log(logged)
        for col in ("cart_value", "margin"):
            learned[col] = logged[col].to_numpy(dtype=float)
        profit = ProfitPolicy(
            learner=learner, catalog=catalog, rules=rules, window_hours=window_h, random_state=rng
        )
        profit.fit(learned, logged["action"].to_numpy(), logged["purchased"].to_numpy())
        report("training", 100.0)

        results: dict[str, Any] = {}
        regret: dict[str, Any] = {}
        for k, name in enumerate(chosen):
            report("policies", 100.0 * k / len(chosen))
            if name == "thompson":
                bandit = run_bandit(
                    contexts, p_true, catalog=catalog, rules=rules, train_rows=is_train, start=start, rng=rng
                )
                results[name] = score_decisions(bandit["actions"][~is_train], test, p_test, catalog)
                regret = bandit["regret"]
                continue
            ledger = Ledger(rules=rules)
            if name == "oracle":
                values = catalog.expected_profit(
                    p_test,
                    test["cart_value"].to_numpy(dtype=float),
                    test["margin"].to_numpy(dtype=float),
                    test["email_consent"].to_numpy(dtype=bool),
                    test["sms_consent"].to_numpy(dtype=bool),
                )
                made = decide_in_order(
                    test, values, catalog=catalog, ledger=ledger, policy=name, rng=rng, reasons=False
                )
            elif name == "profit":
                made = profit.decide(test, ledger, reasons=False)
            else:
                made = FixedPolicy(
                    name, BASELINES[name], catalog=catalog, rules=rules, random_state=rng
                ).decide(test, ledger, reasons=False)
            results[name] = score_decisions(catalog.indices(made["action"]), test, p_test, catalog)
        report("policies", 100.0)
        ceiling = results["oracle"]["profit_per_cart"]
        for res in results.values():
            res["share_of_oracle"] = res["profit_per_cart"] / ceiling if ceiling else float("nan")
        uplift = _uplift_quality(profit, test, p_test, catalog, sim)
        return {
            "policies": results,
            "bandit": regret,
            "uplift": uplift,
            "training": {
                "decisions": len(logged),
                "purchase_rate": float(logged["purchased"].mean()) if len(logged) else float("nan"),
                "learner": learner,
            },
            "setup": {
                "users": n_users,
                "train_days": train_days,
                "days": days,
                "start": start.date().isoformat(),
                "train_carts": int(is_train.sum()),
                "test_carts": int((~is_train).sum()),
                "seed": random_state if isinstance(random_state, int) else None,
                "rules": rules.to_dict(),
                "seconds": time.perf_counter() - began,
            },
            "_policy": profit,
            "_test": (test, p_test),
        }
    finally:
        if own:
            scratch.close()


def _uplift_quality(
    policy: ProfitPolicy, test: pd.DataFrame, p_test: np.ndarray, catalog: ActionCatalog, sim: Any
) -> dict[str, Any]:
    """How well the learned uplift ranks carts: Qini against the true uplift, per action, among
    the carts the action can reach.

    Also the share of persuadables among the 30 % of carts with the highest predicted uplift of
    the best action, next to their share overall.
    """
    p_hat = policy.predict_purchase(test)
    reach = catalog.reachable(
        test["email_consent"].to_numpy(dtype=bool), test["sms_consent"].to_numpy(dtype=bool)
    )
    out: dict[str, Any] = {"true_qini": {}}
    for j, name in enumerate(catalog.names[1:], start=1):
        # among the carts the action can reach: elsewhere its true effect is 0 by consent alone
        rows = reach[:, j]
        if rows.sum() > 1 and np.isfinite(p_hat[rows, j]).all():
            out["true_qini"][name] = true_qini_score(
                p_test[rows, j] - p_test[rows, 0], p_hat[rows, j] - p_hat[rows, 0]
            )
    qs = [v for v in out["true_qini"].values() if np.isfinite(v)]
    out["mean_true_qini"] = float(np.mean(qs)) if qs else float("nan")
    truth = sim.truth["truth_carts"]
    kinds = pd.Series(truth["response_type"].to_pylist(), index=truth["cart_id"].to_pylist())
    kind = kinds.reindex(test["cart_id"].astype(str)).to_numpy()
    best_uplift = np.nanmax(p_hat[:, 1:] - p_hat[:, :1], axis=1)
    top = np.argsort(-best_uplift, kind="stable")[: max(1, int(0.3 * len(test)))]
    out["persuadable_share_top30"] = float(np.mean(kind[top] == "persuadable"))
    out["persuadable_share_all"] = float(np.mean(kind == "persuadable"))
    return out
