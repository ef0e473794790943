"""End-to-end jobs on a store or a file: what the `cartlift act` commands run.

- `train_from_log`: fit the profit policy on the store's logged decisions and their outcomes,
  and save it in the store (table ``act_models``, JSON text, no pickle);
- `decide_cart`: decide for one abandoned cart with the saved policy, under the rules and what
  the ``decisions`` log says was already sent, and log the decision;
- `uplift_from_table`: held-out Qini, AUUC and uplift@30 % of the S-, T- and X-learners on any
  randomised table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartlift._random import check_random_state
from cartlift.act._context import CONTEXT_FEATURES, cart_contexts, cart_lines
from cartlift.act._default import HANDOVER_MIN_DECISIONS, HANDOVER_MIN_PURCHASES, DefaultPolicy
from cartlift.act._holdout import holdout_decision
from cartlift.act._log import contexts_from_log, create_decision_tables, decision_outcomes, log_decisions
from cartlift.act._policy import ProfitPolicy
from cartlift.act._rules import Ledger, Rules
from cartlift.act._uplift import SLearner, TLearner, XLearner
from cartlift.act._uplift_metrics import evaluate_uplift
from cartlift.errors import DataError, InvalidParameterError
from cartlift.guardrails import label_deciders, post_treatment_columns
from cartlift.recommend import Recommender
from cartlift.store import MODEL_COLUMNS, MODEL_TABLE, EventStore

__all__ = [
    "MODEL_COLUMNS",
    "MODEL_TABLE",
    "decide_cart",
    "handover_status",
    "load_policy",
    "read_table",
    "save_policy",
    "train_from_log",
    "uplift_from_table",
]

_LEARNERS = {"s_learner": SLearner, "t_learner": TLearner, "x_learner": XLearner}


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV, TSV, Parquet or JSON-lines file as a DataFrame."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"No file at {str(p)!r}.")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(p)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return pd.read_json(p, lines=True)
    return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")


# -- the saved policy ----------------------------------------------------------------------------
def save_policy(store: EventStore, policy: ProfitPolicy, name: str = "profit") -> None:
    """Save a fitted policy in the store's ``act_models`` table (replacing one of the same name)."""
    store.create_tables((MODEL_TABLE,))
    store.con.execute(f"DELETE FROM {MODEL_TABLE} WHERE name = ?", [name])
    store.con.execute(
        f"INSERT INTO {MODEL_TABLE} VALUES (?, ?, ?)",
        [name, datetime.now(UTC).replace(tzinfo=None), policy.to_json()],
    )


def load_policy(store: EventStore, name: str = "profit", random_state: Any = None) -> ProfitPolicy:
    """The policy saved under ``name`` (train one with `train_from_log` or ``cartlift act train``)."""
    rows = []
    if MODEL_TABLE in store.tables():
        rows = store.con.execute(f"SELECT payload FROM {MODEL_TABLE} WHERE name = ?", [name]).fetchall()
    if not rows:
        raise DataError(
            f"The store {str(store.path)!r} has no trained policy {name!r}. Train one with `cartlift act train`."
        )
    return ProfitPolicy.from_dict(json.loads(rows[0][0]), random_state=random_state)


def train_from_log(
    store: EventStore,
    *,
    learner: str = "s_learner",
    policies: Sequence[str] | None = None,
    rules: Rules | None = None,
    name: str = "profit",
    random_state: Any = 0,
) -> dict[str, Any]:
    """Fit the profit policy on the logged decisions with matured outcomes and save it in the store.

    Parameters
    ----------
    learner : {"s_learner", "t_learner", "x_learner"}
    policies : sequence of str, optional
        Learn only from decisions of these policies (e.g. the randomised ``explore`` policy).
    rules : Rules, optional
        The rules the saved policy will decide under (default `Rules()`).
    name : str
        Name to save the policy under.

    Returns
    -------
    dict
        ``decisions`` used, ``purchase_rate``, ``actions`` (rows per action), ``learner``, ``name``.
    """
    logged = decision_outcomes(store, policies=policies, matured_only=True)
    if logged.empty:
        raise DataError(
            "No decisions with matured outcomes in the store's log yet: until there are, `cartlift act decide` "
            "decides with the randomised default policy and logs it; train once their outcome windows closed."
        )
    learned = contexts_from_log(logged)
    for col in ("cart_value", "margin"):
        learned[col] = logged[col].to_numpy(dtype=float)
    features = [c for c in CONTEXT_FEATURES if c in learned.columns]
    policy = ProfitPolicy(learner=learner, rules=rules, features=features, random_state=random_state)
    policy.fit(learned, logged["action"].to_numpy(), logged["purchased"].to_numpy())
    save_policy(store, policy, name)
    return {
        "name": name,
        "learner": learner,
        "decisions": len(logged),
        "purchase_rate": float(logged["purchased"].mean()),
        "actions": {str(k): int(v) for k, v in logged["action"].value_counts().items()},
        "features": features,
    }


# -- which policy decides --------------------------------------------------------------------------
def handover_status(store: EventStore) -> dict[str, Any]:
    """Whether the log has enough matured outcomes for the profit policy to take over from the default.

    Returns
    -------
    dict
        ``matured_decisions``, ``purchases``, the thresholds ``min_decisions`` and
        ``min_purchases`` (see `cartlift.act._default`), ``ready``, and ``policy``: which one
        `decide_cart` decides with (``"profit"`` when one is saved or the log is ready, else ``"default"``).
    """
    create_decision_tables(store)
    saved = MODEL_TABLE in store.tables() and bool(
        store.con.execute(f"SELECT count(*) FROM {MODEL_TABLE} WHERE name = 'profit'").fetchall()[0][0]
    )
    logged = decision_outcomes(store, matured_only=True)
    n, bought = len(logged), int(logged["purchased"].sum()) if len(logged) else 0
    return {
        "matured_decisions": n,
        "purchases": bought,
        "min_decisions": HANDOVER_MIN_DECISIONS,
        "min_purchases": HANDOVER_MIN_PURCHASES,
        "ready": n >= HANDOVER_MIN_DECISIONS and bought >= HANDOVER_MIN_PURCHASES,
        "policy": "profit"
        if saved or (n >= HANDOVER_MIN_DECISIONS and bought >= HANDOVER_MIN_PURCHASES)
        else "default",
    }


def _deciding_policy(store: EventStore, name: str, random_state: Any) -> ProfitPolicy | DefaultPolicy:
    """The saved policy; without one, the profit policy trained now if the log is ready, else the default."""
    try:
        return load_policy(store, name, random_state=random_state)
    except DataError:
        if name != "profit":
            raise
    if handover_status(store)["ready"]:
        train_from_log(store, name=name)
        return load_policy(store, name, random_state=random_state)
    return DefaultPolicy(random_state=random_state)


# -- one live decision ---------------------------------------------------------------------------
def _ledger(
    store: EventStore, policy: ProfitPolicy | DefaultPolicy, user_id: str, ts: pd.Timestamp
) -> Ledger:
    # what the rules need: the customer's own history (caps, coupons) and today's coupons (budget)
    create_decision_tables(store)
    day_start = ts.normalize() - pd.Timedelta(hours=policy.rules_.utc_offset_hours)
    rows = store.query(
        "SELECT * FROM decisions WHERE user_id = ? OR ts >= ? ORDER BY ts",
        [user_id, day_start.to_pydatetime()],
    )
    return Ledger.from_decisions(rows, policy.rules_, policy.catalog_)


def decide_cart(
    store: EventStore,
    cart_id: str,
    *,
    name: str = "profit",
    log: bool = True,
    recommender: str | Path | None = None,
    n_items: int = 4,
    random_state: Any = None,
) -> dict[str, Any]:
    """Decide for one abandoned cart with the saved policy; log the decision unless ``log=False``.

    Without a saved policy named ``"profit"``, the profit policy is trained from the log when
    `handover_status` says it is ready, and otherwise the randomised `DefaultPolicy` decides
    (``options`` then carry each action's weight instead of predictions). A cart that already has a decision (of any policy) gets that decision back: deciding twice
    would contact the customer twice about one cart.

    Parameters
    ----------
    recommender : str or Path, optional
        A saved recommendation model (``cartlift recommend train``): when the action is a
        recommendation block, its ``n_items`` items that complete the cart are attached as ``items``.

    Returns
    -------
    dict
        The decision (``action``, ``channel``, ``expected_profit``, ``propensity``, ``reason``,
        ``coupon_code`` ...) and ``options``: per action the predicted purchase probability, the
        expected profit, and why it was not allowed (empty when it was).
    """
    policy = _deciding_policy(store, name, random_state)
    create_decision_tables(store)
    done = store.query("SELECT * FROM decisions WHERE cart_id = ? ORDER BY ts LIMIT 1", [str(cart_id)])
    # the global holdout comes first: a held-out cart is never messaged, whatever the policy says
    window = float(getattr(policy, "window_hours", 168.0))
    held = None if not done.empty else holdout_decision(store, str(cart_id), window_hours=window, log=log)
    if held is not None:
        return held
    ctx = cart_contexts(store, [str(cart_id)])
    if ctx.empty:
        raise DataError(
            f"Cart {cart_id!r} is not an abandoned cart of this store (a session with a cart_add and no purchase)."
        )
    row = ctx.iloc[0]
    ledger = _ledger(store, policy, str(row["user_id"]), pd.Timestamp(row["ts"]))
    if done.empty:
        blocked = ledger.allowed(
            policy.catalog_,
            ts=float(pd.Timestamp(row["ts"]).timestamp()),
            user_id=str(row["user_id"]),
            cart_id=str(cart_id),
            value=float(row["cart_value"]),
            email=bool(row["email_consent"]),
            sms=bool(row["sms_consent"]),
        )
        decision = policy.decide(ctx, ledger)
        if log:
            # the default logs every context feature, so the profit policy can later learn from it
            kept = [c for c in (policy.features_ or CONTEXT_FEATURES) if c in ctx.columns]
            log_decisions(store, decision, context=ctx[kept])
        out = decision.iloc[0].to_dict()
        out["already_decided"] = False
    else:
        blocked = ["" for _ in policy.catalog_]
        out = done.iloc[0].drop(labels=["context"]).to_dict()
        out["already_decided"] = True
    if isinstance(policy, DefaultPolicy):
        out["options"] = {
            a: {**o, "not_allowed": blocked[j]} for j, (a, o) in enumerate(policy.options().items())
        }
    else:
        p_buy, profit = policy.predict_purchase(ctx)[0], policy.expected_profit(ctx)[0]
        out["options"] = {
            a: {"p_buy": float(p_buy[j]), "expected_profit": float(profit[j]), "not_allowed": blocked[j]}
            for j, a in enumerate(policy.catalog_.names)
        }
    out["logged"] = bool(log and not out["already_decided"])
    if recommender is not None and policy.catalog_.get(str(out["action"])).kind == "recommendation":
        out["items"] = _block(store, str(cart_id), recommender, n_items)
    return {str(k): (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in out.items()}


def _block(store: EventStore, cart_id: str, path: str | Path, k: int) -> list[str]:
    """Items that complete the cart, from a saved recommender (never the cart's own items)."""
    model = Recommender.load(path)
    lines = cart_lines(store, [cart_id])
    recs = model.recommend_for_items([lines["product_id"].astype(str).tolist()], k=k, exclude_given=True)
    return [str(i) for i in recs.to_lists()[0]]


# -- uplift on any randomised table --------------------------------------------------------------
def uplift_from_table(
    path: str | Path | pd.DataFrame,
    *,
    treatment: str,
    control: Any,
    outcome: str,
    test_size: float = 0.3,
    seed: int = 0,
    learner: str = "s_learner",
    features: Sequence[str] | None = None,
    n_estimators: int = 100,
    drop: Sequence[str] = (),
) -> dict[str, Any]:
    """Fit S-, T- and X-learners on a random part of the table and score them on the rest.

    Before fitting, the feature columns are checked (`cartlift.guardrails`): a column whose
    distribution differs between the arms followed the treatment, and a column that alone
    decides the outcome leaks it; both are named in ``warnings`` and dropped.

    Parameters
    ----------
    path : str, Path or DataFrame
        CSV/TSV/Parquet/JSON-lines file, or the table itself.
    treatment, outcome : str
        Column with each row's arm, and the binary outcome column.
    control : object
        The control arm's value (compared as text when the column is text).
    test_size : float in (0, 1)
        Share of rows held out (split within each arm, so every arm is in both parts).
    seed : int
        Seeds the split and the models.
    learner : {"s_learner", "t_learner", "x_learner"}
        Whose scores are reported under ``treatments``.
    features : sequence of str, optional
        Feature columns (default: all other columns).
    drop : sequence of str
        Columns never to use (besides those the checks drop).

    Returns
    -------
    dict
        ``treatments``: per treatment the held-out ``qini``, ``auuc``, ``uplift_auc``,
        ``uplift_at_30``, sizes, ``ate`` and the Qini curve, for ``learner``; ``learners``: the
        same for every learner; ``rows``, ``test_rows``, ``control``, ``learner``, ``features``
        (used), ``dropped`` and ``warnings`` (`Guardrail.to_dict`).
    """
    frame = path if isinstance(path, pd.DataFrame) else read_table(path)
    for col in (treatment, outcome):
        if col not in frame.columns:
            raise DataError(
                f"The table has no column {col!r}. Columns: {', '.join(map(str, frame.columns))}."
            )
    if not (isinstance(test_size, float) and 0.0 < test_size < 1.0):
        raise InvalidParameterError(f"test_size must be a float in (0, 1). Got {test_size!r} instead.")
    if learner not in _LEARNERS:
        raise InvalidParameterError(f"Unknown learner {learner!r}. Use one of: {', '.join(_LEARNERS)}.")
    frame = frame.dropna(subset=[treatment, outcome]).reset_index(drop=True)
    arms = frame[treatment].to_numpy(dtype=object)
    if not any(a == control for a in arms):
        arms = frame[treatment].astype(str).to_numpy(dtype=object)
        control = str(control)
    if not any(a == control for a in arms):
        seen = ", ".join(sorted({str(a) for a in arms})[:10])
        raise DataError(f"The control {control!r} does not occur in column {treatment!r} (values: {seen}).")
    y = pd.to_numeric(frame[outcome], errors="coerce")
    if y.isna().any() or not y.isin((0, 1)).all():
        raise DataError(f"The outcome column {outcome!r} must be binary (0/1).")
    cols = (
        list(features)
        if features is not None
        else [c for c in frame.columns if c not in (treatment, outcome)]
    )
    unknown = [c for c in drop if c not in frame.columns]
    if unknown:
        raise DataError(
            f"Cannot drop {', '.join(unknown)}: no such column(s). Columns: {', '.join(map(str, frame.columns))}."
        )
    cols = [c for c in cols if c not in drop]
    guards = [
        g
        for g in (post_treatment_columns(frame, arms, cols), label_deciders(frame, y.to_numpy(), cols))
        if g is not None
    ]
    flagged = {c for g in guards for c in g.columns}
    cols = [c for c in cols if c not in flagged]
    if not cols:
        raise DataError(
            "No feature column is left after the checks and --drop; the table needs pre-treatment features."
        )
    X = frame[cols]
    rng = check_random_state(seed)
    test = np.zeros(len(frame), dtype=bool)
    for arm in pd.unique(arms):
        idx = rng.permutation(np.flatnonzero(arms == arm))
        test[idx[: max(1, round(test_size * idx.size))]] = True
    results: dict[str, Any] = {}
    for name, cls in _LEARNERS.items():
        model = cls(n_estimators=n_estimators, random_state=seed).fit(
            X[~test], arms[~test], y[~test].to_numpy(), control=control
        )
        uplift = model.predict(X[test])
        results[name] = evaluate_uplift(y[test].to_numpy(), arms[test], uplift, model.treatments_, control)
    return {
        "learner": learner,
        "control": control,
        "rows": len(frame),
        "test_rows": int(test.sum()),
        "treatments": results[learner],
        "learners": results,
        "features": cols,
        "dropped": [*drop, *sorted(flagged)],
        "warnings": [g.to_dict() for g in guards],
    }
