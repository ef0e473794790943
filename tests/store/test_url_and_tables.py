"""One name for a store, one declaration per table."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cartlift.config import get_settings
from cartlift.errors import StoreError
from cartlift.serve import ServeSettings
from cartlift.store import CORE_TABLES, PACKAGE_TABLES, TABLES, EventStore, parse_store_url, table_ddl


@pytest.mark.parametrize(
    ("name", "kind", "path", "conninfo", "schema"),
    [
        ("shop.duckdb", "duckdb", Path("shop.duckdb"), None, None),
        (":memory:", "duckdb", Path(":memory:"), None, None),
        ("postgresql://u@h:5432/db", "postgres", None, "postgresql://u@h:5432/db", None),
        (
            "postgres://u@h/db?schema=s1&sslmode=disable",
            "postgres",
            None,
            "postgres://u@h/db?sslmode=disable",
            "s1",
        ),
    ],
)
def test_a_store_name_is_parsed_in_one_place(
    name: str, kind: str, path: Path | None, conninfo: str | None, schema: str | None
) -> None:
    url = parse_store_url(name)
    assert (url.kind, url.path, url.conninfo, url.schema, url.url) == (kind, path, conninfo, schema, name)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("postgresql://u@h/db?schema=a;drop", "letters, digits and underscores"),
        ("mysql://u@h/db", "DuckDB file path or a postgresql:// URL"),
    ],
)
def test_a_bad_store_name_is_refused_clearly(name: str, match: str) -> None:
    with pytest.raises(StoreError, match=match):
        parse_store_url(name)


def test_a_postgresql_url_is_not_opened_as_a_duckdb_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="needs a DuckDB store file"):
        EventStore("postgresql://u@h/db")


@pytest.mark.parametrize("variable", ["CARTLIFT_DB", "CARTLIFT_SERVE_DB"])
def test_cli_and_service_read_the_same_store_setting(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.delenv("CARTLIFT_DB", raising=False)
    monkeypatch.delenv("CARTLIFT_SERVE_DB", raising=False)
    monkeypatch.setenv(variable, "postgresql://u@h/db?schema=shop")
    assert get_settings().db == ServeSettings().db == "postgresql://u@h/db?schema=shop"
    assert parse_store_url(None).schema == "shop"


def test_both_dialects_come_from_one_declaration() -> None:
    for name, table in TABLES.items():
        duck, pg = table.ddl("duckdb"), table.ddl("postgres")
        assert duck[0].startswith(f"CREATE TABLE IF NOT EXISTS {name} (")
        assert pg[0].startswith(f"CREATE TABLE IF NOT EXISTS {name} (")
        for column in table.columns:
            assert f"\n  {column} " in duck[0] and f"\n  {column} " in pg[0]
        assert "VARCHAR" not in pg[0] and "DOUBLE PRECISION" not in duck[0]
    assert "PRIMARY KEY (experiment, salt, unit_id)" in TABLES["exposures"].ddl("postgres")[0]
    assert any("UNIQUE INDEX" in s and "(cart_id)" in s for s in TABLES["decisions"].ddl("postgres"))
    # DuckDB keeps event ids unique by the importers' anti-join, PostgreSQL by its key
    assert "PRIMARY KEY" not in TABLES["events"].ddl("duckdb")[0]
    assert "event_id TEXT NOT NULL PRIMARY KEY" in TABLES["events"].ddl("postgres")[0]


def test_every_declared_table_is_created_by_duckdb(tmp_path: Path) -> None:
    with EventStore(tmp_path / "s.duckdb") as store:
        assert set(store.tables()) == set(CORE_TABLES)
        store.create_tables(tuple(TABLES))
        assert set(store.tables()) == set(TABLES)
        # the generated DDL is valid DuckDB for every table, and creating twice is harmless
        for sql in table_ddl():
            store.con.execute(sql)
    with duckdb.connect(str(tmp_path / "s.duckdb")) as con:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'decisions' ORDER BY ordinal_position"
            ).fetchall()
        ]
    assert cols == list(TABLES["decisions"].columns)
    assert set(PACKAGE_TABLES).isdisjoint({"api_keys", "audit_log", *CORE_TABLES})
