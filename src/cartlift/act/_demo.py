"""The act step of `cartlift demo`: policies against the simulated truth, and a policy to decide with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cartlift.act._context import cart_contexts
from cartlift.act._simulation import run_simulation
from cartlift.act._workflows import decide_cart, save_policy
from cartlift.store import EventStore

__all__ = ["public_result", "run_demo"]


def public_result(result: dict[str, Any]) -> dict[str, Any]:
    """`run_simulation`'s result without its in-memory objects (what goes to JSON)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def run_demo(
    store: EventStore, out_dir: str | Path, *, n_users: int = 40_000, seed: int = 0, examples: int = 3
) -> dict[str, Any]:
    """Compare the policies on a simulated store's true reactions and make the profit policy usable.

    Runs `run_simulation` (its own simulated store of ``n_users`` customers: the demo store is
    too small to learn nine actions from), writes the full result to
    ``out_dir/act_simulation.json``, saves the trained profit policy into ``store`` so
    ``cartlift act decide --cart ID`` works on it, copies the simulated consents into a
    ``consents`` table when the store is a simulated one, and decides (without logging) for a
    few of the store's latest abandoned carts as examples.

    Returns
    -------
    dict
        ``profit_per_cart`` and ``share_of_oracle`` per policy, ``bandit_regret_per_cart`` (first
        and second half), ``mean_true_qini``, ``examples`` and ``file``.
    """
    result = run_simulation(n_users=n_users, random_state=seed)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    path = target / "act_simulation.json"
    doc = public_result(result)
    path.write_text(json.dumps(doc, indent=2, default=float))
    save_policy(store, result["_policy"])
    if "truth_users" in store.tables():
        store.con.execute(
            "CREATE OR REPLACE TABLE consents AS SELECT user_id, email_consent AS email, sms_consent AS sms "
            "FROM truth_users"
        )
    latest = cart_contexts(store).tail(examples)
    picks = [decide_cart(store, c, log=False, random_state=seed) for c in latest["cart_id"]]
    return {
        "profit_per_cart": {k: v["profit_per_cart"] for k, v in doc["policies"].items()},
        "share_of_oracle": {k: v["share_of_oracle"] for k, v in doc["policies"].items()},
        "bandit_regret_per_cart": {
            "first_half": doc["bandit"].get("regret_per_cart_first_half"),
            "second_half": doc["bandit"].get("regret_per_cart_second_half"),
        },
        "mean_true_qini": doc["uplift"]["mean_true_qini"],
        "examples": [{"cart_id": p["cart_id"], "action": p["action"], "reason": p["reason"]} for p in picks],
        "file": str(path),
    }
