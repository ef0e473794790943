"""Loading a simulated store into the event store through the validated path, and as Parquet files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cartlift.analytics import store_summary
from cartlift.errors import DataError
from cartlift.simulate import SimulatedStore, simulate
from cartlift.store import EventStore


def test_write_to_loads_everything_and_quarantines_nothing(store: EventStore, small: SimulatedStore) -> None:
    result = small.write_to(store)
    n = small.events.num_rows
    assert result["events"]["accepted"] == n
    assert result["events"]["quarantined"] == 0
    assert result["products"]["accepted"] == small.products.num_rows
    assert store.count("quarantine") == 0
    assert store.count("events") == n
    assert store.count("products") == small.config.n_products
    summary = store.summary()
    assert summary["events_by_type"] == {**small.stats.events_by_type, "return": 0}
    assert summary["sessions"] == small.stats.sessions
    assert summary["users"] == small.config.n_users
    assert store_summary(store)["cart_abandonment_rate"] == pytest.approx(small.stats.cart_abandonment_rate)
    # the store's copy is the simulator's, value for value
    got = store.arrow("SELECT event_id, ts, product_id, price, quantity FROM events ORDER BY event_id")
    want = (
        small.events.select(["event_id", "ts", "product_id", "price", "quantity"])
        .cast(got.schema)
        .sort_by("event_id")
    )
    assert got.equals(want)
    products = store.arrow("SELECT * FROM products ORDER BY product_id")
    assert products.equals(small.products.sort_by("product_id").cast(products.schema))
    # the truth sits in its own tables, one per name, never in events
    for name, table in small.truth_tables().items():
        assert store.count(name) == table.num_rows, name
    assert {c for c in store.query("SELECT * FROM events LIMIT 0").columns} == {
        *small.events.column_names,
        "load_id",
    }


def test_loading_twice_adds_nothing_and_another_simulation_is_refused(
    store: EventStore, small: SimulatedStore
) -> None:
    small.write_to(store)
    again = small.write_to(store)
    assert again["events"]["accepted"] == 0
    assert again["events"]["duplicates"] == small.events.num_rows
    assert store.count("events") == small.events.num_rows
    other = simulate(n_users=50, n_days=3, random_state=99)
    with pytest.raises(DataError, match=r"already holds another simulation .* Use a new --db"):
        other.write_to(store)
    assert store.count("events") == small.events.num_rows


def test_parquet_files_load_with_auto_detection(
    tmp_path: Path, store: EventStore, small: SimulatedStore
) -> None:
    paths = small.write_parquet(tmp_path / "out")
    assert {p.name for p in paths.values()} == {
        "events.parquet",
        "products.parquet",
        *(f"{name}.parquet" for name in small.truth_tables()),
    }
    assert pq.read_table(paths["truth_carts"]).equals(small.truth["truth_carts"])
    products = store.ingest(paths["products"])
    assert products.format == "products"
    assert products.accepted == small.products.num_rows
    events = store.ingest(paths["events"])
    assert events.format == "cartlift"
    assert events.accepted == small.events.num_rows
    assert events.quarantined == 0
    assert store.count("products") == small.products.num_rows
    titles = store.query("SELECT count(*) AS n FROM products WHERE title IS NULL OR cost IS NULL")
    assert titles["n"].iloc[0] == 0


def test_events_after_tomorrow_are_refused_before_loading(store: EventStore) -> None:
    sim = simulate(n_users=20, n_days=3, start=datetime(2026, 1, 1, tzinfo=UTC), random_state=0)
    with pytest.raises(
        DataError, match=r"more than a day after now .* Simulate fewer days or an earlier start"
    ):
        sim.check_dates(now=datetime(2025, 12, 1, tzinfo=UTC))
    sim.check_dates(now=datetime(2026, 2, 1, tzinfo=UTC))
    future = simulate(n_users=20, n_days=3, start=datetime(2100, 1, 1, tzinfo=UTC), random_state=0)
    with pytest.raises(DataError, match="a store rejects them"):
        future.write_to(store)
    assert store.count("events") == 0
