"""Fixtures of the analytics tests: the REES46 sample loaded once, and tiny hand-made stores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cartlift.store import EventStore

REES = ("rees46_multicategory_sample", "2019-Oct.csv")


@pytest.fixture(scope="session")
def rees_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    """The REES46 sample ingested once into a real DuckDB file (read by many tests, written by none)."""
    path = tmp_path_factory.mktemp("rees") / "rees.duckdb"
    with EventStore(path) as store:
        store.ingest(shared_data.joinpath(*REES))
        yield store


@pytest.fixture(scope="session")
def rees_raw(shared_data: Path) -> pd.DataFrame:
    """The REES46 sample read straight from the CSV by pandas, without any cartlift code.

    The cut last line is dropped (it has no session) and exact duplicate rows are counted once,
    as a reader of the file would do by hand.
    """
    raw = pd.read_csv(shared_data.joinpath(*REES), dtype=str, on_bad_lines="skip")
    raw = raw.dropna(subset=["user_session", "event_type", "event_time"]).drop_duplicates()
    raw["ts"] = pd.to_datetime(raw["event_time"].str.removesuffix(" UTC"))
    raw["event_type"] = raw["event_type"].map({"view": "view", "cart": "cart_add", "purchase": "purchase"})
    return raw


def make_store(rows: Sequence[dict[str, Any]], products: Sequence[dict[str, Any]] = ()) -> EventStore:
    """An in-memory store holding exactly ``rows`` (inserted with SQL: the funnel is under test, not ingest)."""
    store = EventStore(":memory:")
    frame = pd.DataFrame(
        [
            {
                "event_id": r.get("event_id", f"e{i}"),
                "ts": pd.Timestamp(r["ts"]),
                "user_id": r.get("user_id", "u"),
                "session_id": r.get("session_id", r.get("user_id", "u") + "-s"),
                "event_type": r["event_type"],
                "product_id": r.get("product_id"),
                "quantity": int(r.get("quantity", 1)),
                "price": r.get("price"),
                "order_id": r.get("order_id"),
                "channel": r.get("channel"),
                "device": r.get("device"),
                "properties": r.get("properties"),
                "load_id": "test",
            }
            for i, r in enumerate(rows)
        ]
    )
    if len(frame):
        frame = frame.astype(
            {"product_id": "object", "order_id": "object", "channel": "object", "device": "object"}
        )
        frame = frame.astype({"properties": "object", "price": "float64"})
        store.con.register("_rows", frame)
        store.con.execute("INSERT INTO events SELECT * FROM _rows")
        store.con.unregister("_rows")
    if products:
        cat = pd.DataFrame(
            [
                {
                    "product_id": p["product_id"],
                    "title": p.get("title"),
                    "description": None,
                    "category": p.get("category"),
                    "brand": p.get("brand"),
                    "price": p.get("price"),
                    "cost": None,
                }
                for p in products
            ]
        ).astype({"title": "object", "description": "object", "category": "object", "brand": "object"})
        store.con.register("_products", cat)
        store.con.execute("INSERT INTO products SELECT * FROM _products")
        store.con.unregister("_products")
    return store


def planted_customers(seed: int, outliers: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three kinds of customers (browsers, buyers, lapsed big spenders), plus scattered oddballs."""
    rng = np.random.default_rng(seed)
    kinds = np.repeat([0, 1, 2], [300, 120, 60])
    means = {
        "sessions": (2, 8, 5),
        "views_per_session": (12, 5, 4),
        "cart_adds": (0.2, 6, 4),
        "orders": (0.05, 5, 3),
        "spend": (2, 400, 3000),
        "days_since_last_visit": (10, 3, 120),
    }
    frame = pd.DataFrame({f: rng.gamma(20, np.array(m)[kinds] / 20) for f, m in means.items()})
    if outliers:
        odd = pd.DataFrame({f: np.exp(rng.uniform(-1, 9, outliers)) for f in means})
        frame = pd.concat([frame, odd], ignore_index=True)
        kinds = np.concatenate([kinds, np.full(outliers, -1)])
    return frame, kinds
