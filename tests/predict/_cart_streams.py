"""Random, awkward event streams for the feature tests (not a realistic store: that is the simulator).

They exercise what realistic data rarely does: equal timestamps, removes of items never added,
purchases in the middle of a session, missing prices, sessions crossing midnight, returns,
customers coming back over several days, products outside the catalog.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from cartlift.predict import FEATURE_NAMES, FeatureContext, SessionState
from cartlift.store import EventStore

TYPES = ("view", "cart_add", "cart_remove", "checkout", "purchase", "return")
TYPE_P = (0.45, 0.25, 0.08, 0.07, 0.12, 0.03)


def random_events(
    seed: int, *, n_users: int = 40, n_products: int = 25, days: int = 4, sessions_per_user: int = 3
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Events and catalog rows for `EventStore.ingest_records` / `ingest_products`."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 3, 1)
    events: list[dict[str, Any]] = []
    n = 0
    for u in range(n_users):
        for s in range(int(rng.integers(1, sessions_per_user + 1))):
            t = start + timedelta(seconds=float(rng.uniform(0, days * 86400)))
            device = rng.choice(["mobile", "desktop", None], p=[0.4, 0.3, 0.3])
            for _ in range(int(rng.integers(1, 12))):
                kind = str(rng.choice(TYPES, p=TYPE_P))
                # whole seconds and frequent zero gaps give equal timestamps on purpose
                t += timedelta(seconds=int(rng.choice([0, 0, 1, 30, 600, 4000])))
                product = None if kind == "checkout" else f"p{int(rng.integers(n_products))}"
                price = None if rng.random() < 0.1 else round(float(rng.uniform(1, 300)), 2)
                events.append(
                    {
                        "event_id": f"e{n:05d}",
                        "ts": t.isoformat(sep=" "),
                        "user_id": f"u{u}",
                        "session_id": f"u{u}-s{s}",
                        "event_type": kind,
                        "product_id": product,
                        "quantity": int(rng.integers(1, 4)),
                        "price": price,
                        "device": None if device is None or rng.random() < 0.2 else str(device),
                        "channel": str(rng.choice(["email", "direct"])) if rng.random() < 0.5 else None,
                    }
                )
                n += 1
    catalog = [
        {
            "product_id": f"p{i}",
            "category": f"c{i % 4}" if i % 7 else None,
            "price": round(float(rng.uniform(5, 200)), 2),
        }
        for i in range(n_products - 3)  # the last products are not in the catalog
    ]
    return events, catalog


def live_features(store: EventStore, sessions: list[str] | None = None) -> dict[tuple[str, int], list[Any]]:
    """Feed every event of the store's cart sessions to a `SessionState`; features after each event.

    Returns ``{(session_id, seq): values}`` with ``seq`` the 1-based position in the session.
    """
    where = "session_id IN (SELECT session_id FROM events WHERE event_type IN ('cart_add', 'cart_remove'))"
    events = store.query(f"SELECT * FROM events WHERE {where} ORDER BY session_id, ts, event_id")
    if sessions is not None:
        events = events[events["session_id"].isin(sessions)]
    context = FeatureContext.from_store(store)
    out: dict[tuple[str, int], list[Any]] = {}
    for session_id, group in events.groupby("session_id", sort=False):
        state = SessionState(context)
        for seq, event in enumerate(group.to_dict("records"), start=1):
            state.update(event)
            out[(str(session_id), seq)] = state.values()
    return out


def assert_same_features(batch: pd.DataFrame, live: dict[tuple[str, int], list[Any]]) -> None:
    """Every feature of every batch row equals the live value bit for bit (NaN equals NaN)."""
    assert len(batch) > 0
    rows = [live[(r.session_id, int(r.seq))] for r in batch[["session_id", "seq"]].itertuples(index=False)]
    for j, name in enumerate(FEATURE_NAMES):
        expected = batch[name].tolist()
        got = [row[j] for row in rows]
        bad = [
            (i, e, g)
            for i, (e, g) in enumerate(zip(expected, got, strict=True))
            if not (e == g or (_missing(e) and _missing(g)))
        ]
        assert not bad, f"{name}: {len(bad)} of {len(rows)} moments differ, e.g. (row, batch, live) {bad[:3]}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
