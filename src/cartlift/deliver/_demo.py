"""The deliver step of `cartlift demo`: the simulated store's abandoned carts, decided, sent, and answered.

On the simulated store: every abandoned cart (or those of the last ``days`` simulated days) is
decided as a live store decides (`cartlift.act.decide_with_holdout`): carts in the global
holdout get nothing and the store's policy (the saved profit policy, else the default) decides
for the rest. Every cart, because the report measures the program's impact against the holdout
(`cartlift.act.impact`) on the carts whose 7-day outcome window has closed, by assignment: an
undecided cart would count as treated without having been treated. The outbox worker runs hour by hour
on the simulated clock, so delays, quiet hours in each customer's zone, caps and cancellations
(the customer came back and bought first) happen as they would live; e-mails and SMS are written
as files into ``out_dir/outbox`` (never to a real SMTP server, whatever the environment says).

The simulated customers then answer: the simulator knows each cart's true purchase probability
under every action (``truth_carts``). One uniform draw ``u`` per cart decides both worlds (common
random numbers): the customer buys after the message when ``u < p(action)``, and would have
bought anyway when ``u < p(nothing)``. A customer the message moved (``p(nothing) <= u <
p(action)``) comes back through the restore link: the click is recorded by the same function
the service runs on that link, and the purchase lands in ``events`` with ``channel = email|sms``.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from cartlift._random import check_random_state
from cartlift.act import (
    CONTEXT_FEATURES,
    DefaultPolicy,
    Ledger,
    ProfitPolicy,
    cart_contexts,
    cart_lines,
    decide_with_holdout,
    load_policy,
)
from cartlift.deliver import _repo
from cartlift.deliver._inbound import click
from cartlift.deliver._links import make_token
from cartlift.deliver._settings import DeliverSettings
from cartlift.deliver._tables import Db
from cartlift.deliver._worker import RunResult, Worker
from cartlift.errors import DataError
from cartlift.recommend import ServedRecommender
from cartlift.store import EventStore, store_identity

__all__ = ["run_demo"]


def _policy(store: EventStore, seed: int) -> ProfitPolicy | DefaultPolicy:
    try:
        return load_policy(store, random_state=seed)
    except DataError:
        return DefaultPolicy(random_state=seed)


def run_demo(
    store: EventStore,
    out_dir: str | Path,
    *,
    days: float | None = None,
    seed: int = 0,
    models: Path | ServedRecommender | None = None,
) -> dict[str, Any]:
    """Decide, schedule, send and answer the abandoned carts (of the last ``days``) of a simulated store.

    ``models``: the model registry (or a fitted recommender) whose products the e-mails suggest
    (`Worker`); without one they suggest best sellers.

    Returns
    -------
    dict
        ``policy``, ``days``, ``carts``, ``held_out_carts`` (carts in the global holdout,
        decided "nothing"), ``decided`` (messages decided), ``scheduled``, ``sent``,
        ``cancelled``, ``deferred`` (deferral events), ``dead``, ``clicked``, ``recovered``
        (bought after a message), ``recovered_anyway`` (of them, would have bought without it)
        and ``outbox`` (the folder).
    """
    folder = Path(out_dir) / "outbox"
    if folder.is_dir():  # the demo starts from a fresh store, so its outbox starts empty too
        shutil.rmtree(folder)
    db = Db(store.con)
    _repo.create(db)
    ctx = cart_contexts(store)
    if ctx.empty:
        return {"carts": 0}
    ts = pd.to_datetime(ctx["ts"])
    if days is not None:
        ctx = ctx[ts >= ts.max() - pd.Timedelta(days=days)].reset_index(drop=True)
    policy = _policy(store, seed)
    features = [c for c in (policy.features_ or CONTEXT_FEATURES) if c in ctx.columns]
    decisions = decide_with_holdout(store, policy, ctx, Ledger(rules=policy.rules_), features=features)
    # files only: the demo's addresses are on example.com, and no relay should ever see them
    settings = DeliverSettings(smtp_url=None, sms_url=None, webhook_url=None, outbox_dir=folder)
    worker = Worker(db, settings, outbox_dir=folder, models=models, store_id=store_identity(store.path))
    total = RunResult()
    clock = pd.Timestamp(decisions["ts"].min()).to_pydatetime().replace(minute=0, second=0, microsecond=0)
    end = pd.Timestamp(decisions["ts"].max()).to_pydatetime() + timedelta(hours=36)
    while clock <= end:
        total.add(worker.run_once(clock))
        clock += timedelta(hours=1)
    worker.close()
    clicked, recovered, anyway = _answer(store, db, seed)
    messages = decisions["channel"].isin(["email", "sms"])
    return {
        "policy": policy.name if isinstance(policy, DefaultPolicy) else "profit",
        "days": None if days is None else float(days),
        "carts": len(ctx),
        "held_out_carts": int((decisions["policy"] == "holdout").sum()),
        "decided": int(messages.sum()),
        **total.to_dict(),
        "clicked": clicked,
        "recovered": recovered,
        "recovered_anyway": anyway,
        "outbox": str(folder),
    }


def _answer(store: EventStore, db: Db, seed: int) -> tuple[int, int, int]:
    """The simulated customers' answers to the sent messages: clicks, and purchases into ``events``."""
    sent = _repo.sent_messages(db)
    actions = sorted({str(m["action"]) for m in sent} | {"nothing"})
    truth = _repo.truth_reactions(
        db, cart_ids=[str(m["cart_id"]) for m in sent], action_columns=[f"p_{a}" for a in actions]
    )
    rng = check_random_state(seed)
    u = rng.random(len(sent))
    secret = _repo.secret(db)
    clicked = recovered = anyway = 0
    purchases: list[dict[str, Any]] = []
    moved: list[tuple[dict[str, Any], Any]] = []
    for draw, msg in zip(u, sent, strict=True):
        p = truth.get(str(msg["cart_id"]))
        if p is None or draw >= p[f"p_{msg['action']}"]:
            continue
        recovered += 1
        if draw < p["p_nothing"]:
            anyway += 1  # came back by themselves; their purchase is already in the simulated events
            continue
        at = msg["sent_at"] + timedelta(minutes=float(rng.exponential(90.0)))
        click(db, make_token(secret, "restore", str(msg["message_id"])), now=at)
        clicked += 1
        moved.append((msg, at))
    lines = cart_lines(store, [str(m["cart_id"]) for m, _ in moved]) if moved else pd.DataFrame()
    for msg, at in moved:
        for k, line in enumerate(lines[lines["cart_id"] == msg["cart_id"]].itertuples()):
            purchases.append(
                {
                    "event_id": f"recovered-{msg['message_id']}-{k}",
                    "ts": at.isoformat() + "Z",
                    "user_id": msg["user_id"],
                    "session_id": f"recovered-{msg['cart_id']}",
                    "event_type": "purchase",
                    "product_id": line.product_id,
                    "price": float(line.price),
                    "quantity": int(getattr(line, "quantity", 1) or 1),
                    "channel": str(msg["channel"]),
                }
            )
    if purchases:
        store.ingest_records(purchases, source="demo:recovered")
    return clicked, recovered, anyway
