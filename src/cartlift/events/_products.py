"""Catalog loading: products are upserted, bad rows quarantined, like events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from cartlift.errors import DataError, StoreError
from cartlift.events._formats import PRODUCTS, quote_ident
from cartlift.events._ingest import LoadResult, _lit, _plan

__all__ = ["load_products"]

_NUMBERS = ("price", "cost")


def load_products(
    con: duckdb.DuckDBPyConnection, *, path: Path | None = None, table: pa.Table | None = None
) -> LoadResult:
    """Upsert a catalog (file or Arrow table); rows without an id or with bad numbers are quarantined."""
    source = str(path) if path is not None else "python"
    result = LoadResult(load_id=uuid.uuid4().hex, source=source, format=PRODUCTS.name)
    for name in ("_raw", "_pstage", "_rejects", "_reject_scans"):
        con.execute(f"DROP TABLE IF EXISTS {name}")
    columns, relation, *_ = _plan(con, PRODUCTS, path, table, 50_000)
    col = {c: (quote_ident(c) if c in columns else "NULL") for c in PRODUCTS.columns}
    checks = " ".join(
        f"""WHEN nullif(trim({col[c]}), '') IS NOT NULL AND NOT coalesce(isfinite(try_cast({col[c]} AS DOUBLE)), false)
                THEN 'unparseable {c}'
            WHEN try_cast({col[c]} AS DOUBLE) < 0 THEN 'negative {c}'"""
        for c in _NUMBERS
    )
    pairs = ", ".join(f"{_lit(c)}, {quote_ident(c)}" for c in columns)
    try:
        con.execute(
            f"""CREATE TEMP TABLE _pstage AS
                SELECT _row, CAST(json_object({pairs}) AS VARCHAR) AS raw,
                       nullif(trim({col["product_id"]}), '') AS product_id,
                       {", ".join(f"{col[c]} AS {c}" for c in PRODUCTS.columns[1:])},
                       CASE WHEN nullif(trim({col["product_id"]}), '') IS NULL THEN 'missing product' {checks}
                       END AS reason
                FROM {relation}"""
        )
    except duckdb.Error as e:
        raise DataError(f"Cannot read {source!r} as a product catalog: {e}") from e
    key = _lit(Path(source).name)
    now = _lit(datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" "))
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"""INSERT INTO quarantine
                SELECT md5(concat_ws(chr(31), {key}, _row, raw)), {_lit(result.load_id)}, {_lit(source)}, _row,
                       NULL, raw, reason, TIMESTAMP {now}
                FROM _pstage WHERE reason IS NOT NULL
                  AND md5(concat_ws(chr(31), {key}, _row, raw)) NOT IN (SELECT quarantine_id FROM quarantine)"""
        ).fetchall()
        result.reasons = {
            str(r): int(n)
            for r, n in con.execute(
                "SELECT reason, count(*) FROM _pstage WHERE reason IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        }
        result.quarantined = sum(result.reasons.values())
        valid = con.execute("SELECT count(*) FROM _pstage WHERE reason IS NULL").fetchall()[0][0]
        text = ("title", "description", "category", "brand")
        updates = ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in PRODUCTS.columns[1:])
        result.accepted = int(
            con.execute(
                f"""INSERT INTO products
                    SELECT product_id, {", ".join(f"nullif({c}, '')" for c in text)},
                           try_cast(price AS DOUBLE), try_cast(cost AS DOUBLE)
                    FROM _pstage WHERE reason IS NULL
                    QUALIFY row_number() OVER (PARTITION BY product_id ORDER BY _row DESC) = 1
                    ON CONFLICT (product_id) DO UPDATE SET {updates}"""
            ).fetchall()[0][0]
        )
        # a catalog row repeated in the same file keeps its last version; the others are duplicates
        result.duplicates = int(valid) - result.accepted
        result.rows_read = int(valid) + result.quarantined
        con.execute("COMMIT")
    except BaseException as e:
        con.execute("ROLLBACK")
        if isinstance(e, duckdb.Error):
            raise StoreError(f"Loading products from {source!r} failed and nothing was written: {e}") from e
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS _pstage")
        con.execute("DROP TABLE IF EXISTS _raw")
    return result
