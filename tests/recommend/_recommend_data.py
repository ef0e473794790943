"""Small synthetic shop data for the recommendation tests (fast, deterministic, with structure).

Users have a favourite category and mostly touch its products, so a working model must rank
products of that category above others; a catalogue gives content-based models text to read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N_USERS = 40
N_ITEMS = 24
N_CATEGORIES = 4
CATEGORIES = ["shoes", "shirts", "hats", "bags"]
BRANDS = ["acme", "zenith", "nova"]


def make_catalog(n_items: int = N_ITEMS) -> pd.DataFrame:
    """Products p0..p{n-1}: category = index mod 4, brand = index mod 3."""
    rows = []
    for i in range(n_items):
        cat = CATEGORIES[i % N_CATEGORIES]
        brand = BRANDS[i % len(BRANDS)]
        rows.append(
            {
                "product_id": f"p{i}",
                "title": f"{brand} {cat[:-1]} model {i}",
                "description": f"a {cat[:-1]} made by {brand}",
                "category": cat,
                "brand": brand,
            }
        )
    return pd.DataFrame(rows)


def make_events(seed: int = 0, n_users: int = N_USERS, n_items: int = N_ITEMS) -> pd.DataFrame:
    """Three sessions per user, 2-5 events each, 85% inside the user's favourite category."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = pd.Timestamp("2026-01-01")
    for u in range(n_users):
        fav = u % N_CATEGORIES
        fav_items = [i for i in range(n_items) if i % N_CATEGORIES == fav]
        for s in range(3):
            start = t0 + pd.Timedelta(days=int(rng.integers(0, 20)), minutes=int(rng.integers(0, 600)))
            for e in range(int(rng.integers(2, 6))):
                item = int(rng.choice(fav_items)) if rng.random() < 0.85 else int(rng.integers(0, n_items))
                kind = rng.choice(["view", "view", "view", "cart_add", "purchase"])
                rows.append(
                    {
                        "user_id": f"u{u}",
                        "session_id": f"u{u}-s{s}",
                        "item_id": f"p{item}",
                        "ts": start + pd.Timedelta(minutes=3 * e),
                        "event_type": str(kind),
                    }
                )
    return pd.DataFrame(rows).sort_values("ts", kind="stable").reset_index(drop=True)
