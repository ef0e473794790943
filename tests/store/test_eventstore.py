"""The store's promises: loading twice is harmless, a failed load leaves no trace, exports are complete."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from cartlift.analytics import store_summary
from cartlift.errors import DataError, StoreError, UnknownTableError
from cartlift.store import CORE_TABLES, EventStore

REES = ("rees46_multicategory_sample", "2019-Oct.csv")


def snapshot(store: EventStore) -> dict[str, pd.DataFrame]:
    """Every core table, sorted, so two snapshots compare row for row."""
    return {t: store.query(f"SELECT * FROM {t} ORDER BY ALL") for t in CORE_TABLES}


def test_loading_twice_adds_nothing(store: EventStore, shared_data: Path) -> None:
    path = shared_data.joinpath(*REES)
    first = store.ingest(path)
    before = snapshot(store)
    second = store.ingest(path)
    after = snapshot(store)
    assert second.accepted == 0
    assert second.duplicates == first.accepted + first.duplicates
    assert second.quarantined == first.quarantined  # still reported, but stored once
    for table in ("events", "products", "quarantine"):
        pd.testing.assert_frame_equal(before[table], after[table])
    assert store.count("loads") == 2  # both loads are on record


def test_overlapping_and_disjoint_loads_store_each_event_once(
    store: EventStore, shared_data: Path, tmp_path: Path
) -> None:
    # the insert compares ids with the store only when the checking pass saw known ones:
    # both branches must give the store one copy of every event
    lines = shared_data.joinpath(*REES).read_text().splitlines()[:-1]  # without the cut last line
    header, body = lines[0], lines[1:]
    halves = {"first": body[:6000], "second": body[6000:12000], "overlap": body[3000:9000]}
    for name, rows in halves.items():
        (tmp_path / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n")
    store.ingest(tmp_path / "first.csv")
    disjoint = store.ingest(tmp_path / "second.csv")  # new ids only
    overlap = store.ingest(tmp_path / "overlap.csv")  # every id already stored
    assert store.count("events") == len(set(body[:12000]))  # identical rows share their content id
    assert disjoint.accepted == len(set(body[6000:12000]) - set(body[:6000]))
    assert (overlap.accepted, overlap.rows_read) == (0, 6000)


def test_a_load_that_fails_midway_leaves_the_store_as_it_was(
    store: EventStore, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ingest_records(
        [{"ts": "2026-01-05 10:00:00", "user_id": "u", "event_type": "view", "product_id": "p"}]
    )
    before = snapshot(store)
    existing = store.query("SELECT load_id FROM loads")["load_id"].iloc[0]
    # the next load gets an id that is already taken: its very last write (to `loads`) fails,
    # after quarantine, events and products were written inside the transaction
    monkeypatch.setattr("cartlift.events._ingest.uuid.uuid4", lambda: uuid.UUID(existing))
    with pytest.raises(StoreError, match="nothing was written"):
        store.ingest(shared_data.joinpath(*REES))
    after = snapshot(store)
    for table in CORE_TABLES:
        pd.testing.assert_frame_equal(before[table], after[table])
    # and the store still works afterwards
    monkeypatch.undo()
    assert store.ingest(shared_data.joinpath(*REES)).accepted > 17_000


def test_interrupted_load_rolls_back(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cartlift.events._ingest as ingest

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest, "_upsert_products", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.ingest_records(
            [{"ts": "2026-01-05 10:00:00", "user_id": "u", "event_type": "view", "product_id": "p"}]
        )
    assert store.count("events") == 0
    assert store.count("loads") == 0


def test_export_any_table_to_parquet(store: EventStore, shared_data: Path, tmp_path: Path) -> None:
    store.ingest(shared_data.joinpath(*REES))
    for table in ("events", "products", "quarantine", "loads"):
        out = tmp_path / f"{table}.parquet"
        rows = store.export(table, out)
        written = pq.read_table(out)
        assert written.num_rows == rows == store.count(table)
        assert written.column_names == list(store.query(f"SELECT * FROM {table} LIMIT 0").columns)
    with pytest.raises(UnknownTableError, match="has no table 'nope'"):
        store.export("nope", tmp_path / "x.parquet")
    with pytest.raises(DataError, match="Invalid table name"):
        store.export("events; DROP TABLE events", tmp_path / "x.parquet")


def test_products_keep_known_attributes(store: EventStore) -> None:
    store.ingest_products(
        [{"product_id": "p1", "title": "Mug", "category": "kitchen", "price": "8", "cost": "3"}]
    )
    store.ingest_products([{"product_id": "p1", "price": "9"}])  # a price update only
    row = store.query("SELECT * FROM products").iloc[0]
    assert (row["title"], row["category"], row["price"], row["cost"]) == ("Mug", "kitchen", 9.0, 3.0)
    result = store.ingest_products([{"product_id": "", "title": "x"}, {"product_id": "p2", "cost": "-1"}])
    assert result.reasons == {"missing product": 1, "negative cost": 1}
    formats = store.query("SELECT format, accepted, quarantined FROM loads ORDER BY started_at")
    assert formats.values.tolist() == [["products", 1, 0], ["products", 1, 0], ["products", 0, 2]]


def test_a_csv_catalog_quarantines_bad_and_cut_lines_with_their_numbers(
    store: EventStore, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "product_id,title,category,brand,price,cost\n"
        "p1,Shoe,apparel,acme,10,5\n"
        "p3,Cut\n"
        ",Bad,apparel,acme,3,1\n"
        "p2,Hat,apparel,acme,-1,1\n"
    )
    result = store.ingest(path, "products")
    assert (result.accepted, result.quarantined) == (1, 3)
    q = store.quarantine().sort_values("line")
    assert q[["row_number", "line", "reason"]].values.tolist() == [
        [2, 3, "truncated line (missing columns)"],
        [3, 4, "missing product"],
        [4, 5, "negative price"],
    ]


def test_derived_tables_never_overwrite_core_tables(store: EventStore) -> None:
    with pytest.raises(DataError, match="core table"):
        store.write_table("events", pd.DataFrame({"a": [1]}))
    assert store.write_table("truth_example", pd.DataFrame({"a": [1, 2]})) == 2
    assert store.count("truth_example") == 2


def test_default_path_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTLIFT_DB", str(tmp_path / "env.duckdb"))
    with EventStore() as store:
        assert store.path == tmp_path / "env.duckdb"
    assert (tmp_path / "env.duckdb").exists()


def test_summary_counts_abandoned_carts(store: EventStore) -> None:
    rows = [
        {
            "ts": "2026-01-05 10:00:00",
            "user_id": "a",
            "session_id": "s1",
            "event_type": "cart_add",
            "product_id": "p",
            "price": "10",
        },
        {
            "ts": "2026-01-05 10:01:00",
            "user_id": "a",
            "session_id": "s1",
            "event_type": "purchase",
            "product_id": "p",
            "price": "10",
        },
        {
            "ts": "2026-01-05 11:00:00",
            "user_id": "b",
            "session_id": "s2",
            "event_type": "cart_add",
            "product_id": "p",
            "price": "10",
            "quantity": "2",
        },
        {
            "ts": "2026-01-05 12:00:00",
            "user_id": "c",
            "session_id": "s3",
            "event_type": "view",
            "product_id": "p",
        },
    ]
    store.ingest_records(rows)
    summary = store_summary(store)
    assert summary["sessions_with_cart"] == 2
    assert summary["cart_abandonment_rate"] == 0.5
    assert summary["abandoned_cart_value"] == 20.0
