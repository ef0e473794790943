"""The impression log: every list the running service answers is written to ``rec_impressions``
(through its writer, off the request path), and a later purchase of a listed item is attributed to
it in ``GET /v1/attribution``; on a DuckDB store and on the local PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from _serve_helpers import Api, Server, copy_store, copy_to_postgres, pg_schema

from cartlift.serve import create_key_in_store
from cartlift.store import IMPRESSION_COLUMNS, EventStore, connect, insert_impressions


def _impressions(db: str) -> pd.DataFrame:
    if db.startswith("postgresql://"):
        pg = connect(db)
        try:
            with pg.cursor() as cur:
                cur.execute(f"SELECT {', '.join(IMPRESSION_COLUMNS)} FROM rec_impressions")
                return pd.DataFrame(cur.fetchall(), columns=list(IMPRESSION_COLUMNS))
        finally:
            pg.close()
    with EventStore(db, read_only=True) as store:
        return store.query("SELECT * FROM rec_impressions")


def _shown(api: Api) -> dict[str, list[str]]:
    """Ask every recommendation route once; each answer's item ids by context."""
    lists = {
        "home": api("GET", "/v1/users/u5/recommendations?k=5").json(),
        "cart": api("GET", "/v1/users/u7/recommendations?k=4&context=cart&items=p3,p4").json(),
        "product": api("GET", "/v1/users/u8/recommendations?k=3&context=product&items=p3").json(),
        "similar": api("GET", "/v1/items/p3/similar?k=4").json(),
        "anonymous cart": api(
            "POST", "/v1/recommendations/cart", json={"items": ["p5"], "k": 3, "session_id": "s-anon"}
        ).json(),
    }
    return {c: [i["item_id"] for i in doc["items"]] for c, doc in lists.items()}


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_served_lists_are_logged_and_a_purchase_of_a_listed_item_is_attributed(
    backend: str, trained_store: Path, tmp_path: Path
) -> None:
    duck = str(copy_store(trained_store, tmp_path))
    if backend == "duckdb":
        _run(duck, tmp_path)
        return
    with pg_schema() as url:
        copy_to_postgres(Path(duck), url, ("events", "products"))
        _run(url, tmp_path, env={"CARTLIFT_SERVE_MODEL_DIR": str(tmp_path / "models")})


def _run(db: str, folder: Path, env: dict[str, str] | None = None) -> None:
    admin = create_key_in_store(db, scope="admin")[0]
    with Server(db, folder / "server.log", env=env) as server:
        api = Api(server, admin)
        try:
            shown = _shown(api)
            bought = shown["home"][1]  # the second item of u5's list: bought an hour after it was shown
            at = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
            posted = api(
                "POST",
                "/v1/events",
                json={"events": [{"event_id": "imp-buy-1", "ts": at.isoformat(), "user_id": "u5",
                                  "session_id": "s-imp-1", "event_type": "purchase", "product_id": bought,
                                  "price": 12.5, "quantity": 2}]},
            ).json()  # fmt: skip
            assert posted["accepted"] == 1, posted
            # the log is written about once a second, off the request path: wait for the link
            deadline, doc = time.monotonic() + 60, None
            while time.monotonic() < deadline:
                doc = api("GET", "/v1/attribution").json()
                if doc.get("attributed", {}).get("recommendation", {}).get("items"):
                    break
                time.sleep(0.5)
            assert doc is not None and doc["attributed"]["recommendation"] == {
                "orders": 1,
                "items": 1,
                "revenue": 25.0,
            }, doc
            home = next(r for r in doc["recommendations"]["by_context"] if r["context"] == "home")
            assert home["items_bought"] == 1 and home["revenue"] == 25.0
            assert doc["rec_window_hours"] == 24.0
        finally:
            api.close()
    logged = _impressions(db)
    assert len(logged) == sum(len(v) for v in shown.values())
    for context, ids in shown.items():
        name = "cart" if context == "anonymous cart" else context
        rows = logged[
            (logged["context"] == name)
            & (logged["session_id"].fillna("") == ("s-anon" if context == "anonymous cart" else ""))
        ]
        assert rows.sort_values("position")["product_id"].tolist() == ids, context
        assert rows["impression_id"].nunique() == 1
    home = logged[logged["context"] == "home"]
    # the recommender first, topped up by the popularity model: both served kinds, with their versions
    assert set(home["user_id"]) == {"u5"} and home.sort_values("position")["source"].iloc[0] == "recommender"
    assert set(home["source"]) <= {"recommender", "popularity"}
    assert home["model_version"].str.startswith("v0").all() and home["model"].notna().all()
    assert logged.loc[logged["context"] == "similar", "user_id"].isna().all()
    assert set(logged.loc[logged["session_id"] == "s-anon", "user_id"].isna()) == {True}


def test_impression_rows_reach_postgresql_and_duckdb_as_they_were_given(tmp_path: Path) -> None:
    # PostgreSQL takes them as one CSV text: nulls, empty texts, quotes, commas and line breaks
    # must come back as they went in, and as DuckDB stores them
    shown = datetime(2026, 12, 6, 10, 0, 0, 123456)
    rows = [
        ("i1", shown, "u1", None, "home", 'p"1', 1, "recommender", "ranker", "v0001", None),
        ("i1", shown, "u1", None, "home", "p,2\nx", 2, "recommender", "ranker", "v0001", None),
        ("i2", shown, None, "s1", "cart", "", 1, "best-sellers", None, None, "m1"),
    ]
    with EventStore(tmp_path / "s.duckdb") as store:
        insert_impressions(store, rows)
        duck = store.query(f"SELECT {', '.join(IMPRESSION_COLUMNS)} FROM rec_impressions ORDER BY 1, 7")
    with pg_schema() as url:
        pg = connect(url)
        try:
            insert_impressions(pg, rows)
            with pg.cursor() as cur:
                cur.execute(f"SELECT {', '.join(IMPRESSION_COLUMNS)} FROM rec_impressions ORDER BY 1, 7")
                got = cur.fetchall()
        finally:
            pg.close()
    assert got == rows

    def plain(v: object) -> object:
        return None if v is None or v is pd.NaT or (isinstance(v, float) and v != v) else v

    assert [tuple(plain(v) for v in r) for r in duck.itertuples(index=False)] == rows
