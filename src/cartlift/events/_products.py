"""Catalog loading: products are upserted, bad rows quarantined, like events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from cartlift.events._formats import PRODUCTS, quote_ident
from cartlift.events._ingest import _TEMP, LoadResult, _lit, _plan, _quarantine, _raw_json_sql, committed_load

__all__ = ["load_products"]

_NUMBERS = ("price", "cost")
_TEXT = ("title", "description", "category", "brand")


def load_products(
    con: duckdb.DuckDBPyConnection,
    *,
    path: Path | None = None,
    table: pa.Table | None = None,
    source: str | None = None,
) -> LoadResult:
    """Upsert a catalog (file or Arrow table); rows without an id or with bad numbers are quarantined.

    A product repeated in the same source keeps its last row; the earlier ones count as duplicates.
    Attributes a row leaves empty keep the value the store already has.
    """
    started = datetime.now(UTC).replace(tzinfo=None)
    source = source or (str(path) if path is not None else "python")
    result = LoadResult(load_id=uuid.uuid4().hex, source=source, format=PRODUCTS.name)
    for name in _TEMP:
        con.execute(f"DROP TABLE IF EXISTS {name}")
    src = _plan(con, PRODUCTS, path, table, 50_000)
    col = {c: (quote_ident(c) if c in src.columns else "NULL::VARCHAR") for c in PRODUCTS.columns}
    checks = " ".join(
        f"""WHEN nullif(trim({col[c]}), '') IS NOT NULL AND NOT coalesce(isfinite(try_cast({col[c]} AS DOUBLE)), false)
                THEN 'unparseable {c}'
            WHEN try_cast({col[c]} AS DOUBLE) < 0 THEN 'negative {c}'"""
        for c in _NUMBERS
    )

    checked = f"""SELECT *, CASE WHEN nullif(trim({col["product_id"]}), '') IS NULL THEN 'missing product'
                                 {checks} END AS _reason
                  FROM {src.relation}"""
    now = _lit(started.isoformat(sep=" "))

    with committed_load(con, result, started):
        raw = _raw_json_sql(src)
        bad = f"SELECT _row, {raw} AS raw, _reason AS reason FROM ({checked}) WHERE _reason IS NOT NULL"
        _quarantine(con, result, src, bad, now)
        updates = ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in PRODUCTS.columns[1:])
        valid, result.accepted = (
            int(v)
            for v in con.execute(
                f"""WITH valid AS (SELECT * FROM ({checked}) WHERE _reason IS NULL),
                    ins AS (INSERT INTO products
                        SELECT trim({col["product_id"]}), {", ".join(f"nullif({col[c]}, '')" for c in _TEXT)},
                               {", ".join(f"try_cast({col[c]} AS DOUBLE)" for c in _NUMBERS)}
                        FROM valid
                        QUALIFY row_number() OVER (PARTITION BY trim({col["product_id"]}) ORDER BY _row DESC) = 1
                        ON CONFLICT (product_id) DO UPDATE SET {updates}
                        RETURNING 1)
                    SELECT (SELECT count(*) FROM valid), (SELECT count(*) FROM ins)"""
            ).fetchall()[0]
        )
        result.duplicates = valid - result.accepted
        result.rows_read = valid + result.quarantined
    return result
