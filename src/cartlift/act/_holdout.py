"""The global holdout: a share of abandoned carts that never gets a message, so the whole program's
incremental profit can be measured against it (`cartlift.act.impact`).

Assignment is the experiments package's hash of (salt, cart id) (`cartlift.experiments.hash_unit`),
so the CLI, the service and the delivery worker agree without a lookup. The share lives in the
store's ``holdout_phases`` table; changing it starts a new phase with a new salt (as changing an
experiment's weights does), and each phase is analysed on its own carts: mixing carts assigned
under two shares would bias the comparison. Every decision records the cart's group in
``holdout_assignments``; a held-out cart's decision is "nothing" (policy ``holdout``), and
`is_held_out` is what a sender checks before a message leaves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from cartlift.act._context import cart_contexts
from cartlift.act._log import log_decisions
from cartlift.errors import InvalidParameterError
from cartlift.experiments import hash_unit, hash_units
from cartlift.store import EventStore

__all__ = [
    "DEFAULT_HOLDOUT_SHARE",
    "Holdout",
    "current_holdout",
    "holdout_phases",
    "is_held_out",
    "record_assignment",
    "record_assignments",
    "set_holdout",
]

DEFAULT_HOLDOUT_SHARE = 0.10
HOLDOUT_POLICY = "holdout"


@dataclass(frozen=True)
class Holdout:
    """One phase of the global holdout.

    Parameters
    ----------
    share : float
        Share of carts held out, in [0, 0.5].
    salt : str
        Hash salt of the phase.
    phase : int
        Phase number (1 for the first share the store used).
    started_at : datetime, optional
        Carts abandoned from this time on belong to the phase (None: from the store's beginning).
    """

    share: float = DEFAULT_HOLDOUT_SHARE
    salt: str = "cartlift-holdout-1"
    phase: int = 1
    started_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_share(self.share)

    def contains(self, cart_id: object) -> bool:
        """Whether the cart is held out (never messaged)."""
        return hash_unit(self.salt, str(cart_id)) < self.share

    def assign(self, cart_ids: Any) -> np.ndarray:
        """Bool array: which of ``cart_ids`` are held out."""
        ids = [str(c) for c in cart_ids]
        if not ids:
            return np.zeros(0, dtype=bool)
        return np.asarray(hash_units(self.salt, ids), dtype=float) < self.share

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {
            "phase": self.phase,
            "share": self.share,
            "salt": self.salt,
            "started_at": None if self.started_at is None else self.started_at.isoformat(),
        }


def _check_share(share: float) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= float(share) <= 0.5:
        raise InvalidParameterError(
            f"The holdout share must be a number in [0, 0.5] (0.1 holds out 10 % of carts). Got {share!r} instead."
        )
    return float(share)


def _ensure(store: EventStore) -> None:
    # declared in `cartlift.store.TABLES`, so a PostgreSQL store has them too
    store.create_tables(("holdout_phases", "holdout_assignments"))


def holdout_phases(store: EventStore) -> pd.DataFrame:
    """Every phase of the holdout, oldest first (phase, share, salt, started_at, created_at)."""
    _ensure(store)
    return store.query("SELECT * FROM holdout_phases ORDER BY phase")


def _row(r: Any) -> Holdout:
    started = None if pd.isna(r["started_at"]) else pd.Timestamp(r["started_at"]).to_pydatetime()
    return Holdout(share=float(r["share"]), salt=str(r["salt"]), phase=int(r["phase"]), started_at=started)


def current_holdout(store: EventStore) -> Holdout:
    """The phase in force; a store without one starts phase 1 at the default share (10 %) from its beginning."""
    phases = holdout_phases(store)
    if phases.empty:
        first = Holdout()
        store.con.execute(
            "INSERT INTO holdout_phases VALUES (?, ?, ?, NULL, now()) ON CONFLICT DO NOTHING",
            [first.phase, first.share, first.salt],
        )
        return first
    return _row(phases.iloc[-1])


def set_holdout(store: EventStore, share: float) -> Holdout:
    """Hold out ``share`` of carts from now on; a new share starts a new phase (same share: nothing changes).

    The new phase starts at the store's newest event (the store's own clock, so a simulated or
    replayed store works like a live one) with a new salt.
    """
    share = _check_share(share)
    now = current_holdout(store)
    if abs(now.share - share) < 1e-12:
        return now
    newest = store.con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
    nxt = Holdout(
        share=share, salt=f"cartlift-holdout-{now.phase + 1}", phase=now.phase + 1, started_at=newest
    )
    store.con.execute(
        "INSERT INTO holdout_phases VALUES (?, ?, ?, ?, now())", [nxt.phase, nxt.share, nxt.salt, newest]
    )
    return nxt


def is_held_out(store: EventStore, cart_id: str) -> bool:
    """Whether the cart is in the global holdout: a sender must not message it.

    The recorded assignment wins (a cart keeps the group it was decided in, even after the share
    changed); otherwise the phase in force decides.
    """
    _ensure(store)
    got = store.con.execute(
        "SELECT held_out FROM holdout_assignments WHERE cart_id = ?", [str(cart_id)]
    ).fetchall()
    if got:
        return bool(got[0][0])
    return current_holdout(store).contains(cart_id)


def record_assignment(
    store: EventStore,
    holdout: Holdout,
    *,
    cart_id: str,
    user_id: str | None,
    ts: Any,
    decision_id: str | None,
) -> bool:
    """Record the cart's group with its decision (first record wins); returns whether it is held out."""
    _ensure(store)
    held = holdout.contains(cart_id)
    store.con.execute(
        "INSERT INTO holdout_assignments VALUES (?, ?, ?, ?, ?, ?, ?, now()) ON CONFLICT DO NOTHING",
        [
            str(cart_id),
            None if user_id is None else str(user_id),
            None if ts is None else pd.Timestamp(ts).to_pydatetime(),
            holdout.phase,
            holdout.share,
            held,
            decision_id,
        ],
    )
    return held


def record_assignments(store: EventStore, holdout: Holdout, carts: pd.DataFrame) -> np.ndarray:
    """`record_assignment` for a batch, in one statement (first record of a cart wins).

    ``carts`` has ``cart_id``, ``user_id``, ``ts`` and ``decision_id``; returns each cart's
    held-out flag. One set-based insert, where one insert per cart re-ran the tables' DDL and a
    statement per cart.
    """
    _ensure(store)
    rows = pd.DataFrame(
        {
            "cart_id": carts["cart_id"].astype(str).to_numpy(),
            "user_id": carts["user_id"].astype("string").to_numpy(),
            "ts": pd.to_datetime(carts["ts"]).to_numpy(),
            "phase": holdout.phase,
            "share": holdout.share,
            "held_out": holdout.assign(carts["cart_id"].astype(str)),
            "decision_id": carts["decision_id"].astype("string").to_numpy(),
        }
    )
    fresh = rows.drop_duplicates("cart_id")  # one row per cart in one statement
    store.con.register("_holdout_batch", fresh)
    try:
        store.con.execute(
            "INSERT INTO holdout_assignments SELECT cart_id, user_id, ts, phase, share, held_out, decision_id, "
            "now() FROM _holdout_batch ON CONFLICT DO NOTHING"
        )
    finally:
        store.con.unregister("_holdout_batch")
    return rows["held_out"].to_numpy(dtype=bool)


def held_out_decision(
    holdout: Holdout,
    *,
    decision_id: Any,
    ts: Any,
    user_id: Any,
    cart_id: Any,
    cart_value: Any,
    margin: Any,
    coupon_expires_at: Any,
    window_hours: float,
) -> dict[str, Any]:
    """The ``decisions`` row of a held-out cart ("nothing", never messaged, propensity 1), in the
    table's column order; scalars for one cart, or arrays of one length for a batch (a DataFrame's
    columns, the scalars broadcast)."""
    return {
        "decision_id": decision_id,
        "ts": ts,
        "user_id": user_id,
        "cart_id": cart_id,
        "policy": HOLDOUT_POLICY,
        "action": "nothing",
        "channel": "none",
        "propensity": 1.0,
        "expected_profit": float("nan"),
        "cart_value": cart_value,
        "margin": margin,
        "discount_value": 0.0,
        "cost": 0.0,
        "coupon_code": None,
        "coupon_expires_at": coupon_expires_at,
        "window_hours": float(window_hours),
        "reason": (
            f"global holdout ({holdout.share * 100:g} % of carts, phase {holdout.phase}): never messaged, "
            "so the program's incremental profit can be measured"
        ),
        "run_id": None,
    }


def holdout_decision(
    store: EventStore, cart_id: str, *, window_hours: float, log: bool
) -> dict[str, Any] | None:
    """The decision for a held-out cart ("nothing", never messaged), or None when the cart is treated.

    Records the cart's group either way (with ``log``); a held-out cart's decision is logged to
    ``decisions`` with policy ``"holdout"`` and propensity 1. Only a hash is computed for a treated
    cart, so the policy's own path stays as fast as it was.
    """
    holdout = current_holdout(store)
    held = holdout.contains(cart_id)
    if not held:
        if log:
            who = store.con.execute(
                "SELECT min(user_id), max(ts) FROM events WHERE session_id = ?", [str(cart_id)]
            ).fetchall()[0]
            user = None if who[0] is None else str(who[0])
            record_assignment(store, holdout, cart_id=cart_id, user_id=user, ts=who[1], decision_id=None)
        return None
    ctx = cart_contexts(store, [str(cart_id)])
    if ctx.empty:
        return None  # not an abandoned cart: the policy's path says so
    cart = ctx.iloc[0]
    decision_id = str(uuid.uuid4())
    row = held_out_decision(
        holdout,
        decision_id=decision_id,
        ts=pd.Timestamp(cart["ts"]),
        user_id=str(cart["user_id"]),
        cart_id=str(cart_id),
        cart_value=float(cart["cart_value"]),
        margin=float(cart["margin"]),
        coupon_expires_at=None,
        window_hours=float(window_hours),
    )
    if log:
        log_decisions(store, pd.DataFrame([row]))
        record_assignment(
            store,
            holdout,
            cart_id=cart_id,
            user_id=str(cart["user_id"]),
            ts=row["ts"],
            decision_id=decision_id,
        )
    return {**row, "holdout": True, "already_decided": False, "logged": log, "options": {}}
