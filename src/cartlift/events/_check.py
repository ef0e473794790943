"""The importers' validation as a function: records in, accepted typed rows and rejected rows out.

`check_records` runs the same SQL as every load (`_typed_sql`: one reason per record, the one id
rule, sessions cut by the same gap) on a DuckDB connection used only as a calculator: it reads
no store and writes none. A caller that owns its own store (the service's writer, on DuckDB or
PostgreSQL) stores what it returns in its own transaction, so nothing is parsed twice: the typed
rows it returns are the rows stored and the rows the live sessions take in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cartlift.events._formats import CARTLIFT
from cartlift.events._ingest import (
    CONFLICT_REASON,
    _raw_json_sql,
    _require,
    _sessionize_sql,
    _Source,
    _typed_sql,
    stage_arrow,
)
from cartlift.events._schema import EVENT_COLUMNS

__all__ = ["STORED_COLUMNS", "CheckedRecords", "check_records", "quarantine_id"]

STORED_COLUMNS: Final = tuple(c for c in EVENT_COLUMNS if c != "load_id")
"""The columns of an accepted row that go into `events` (the load id is the writer's)."""

# an id repeated in one batch: same typed content is a retry (a duplicate), other content a conflict
_CONTENT = "hash(ts, user_id, session_id, event_type, product_id, quantity, price, order_id, channel, device, properties)"


@dataclass(frozen=True)
class CheckedRecords:
    """What `check_records` found, record by record.

    Attributes
    ----------
    accepted : pyarrow.Table
        The first valid record of each event id, typed (`STORED_COLUMNS`, the product attributes
        ``title, category, brand``, and ``_row``, the 1-based record number).
    repeated : list of (int, str)
        ``(record number, event id)`` of later valid records with an id met earlier in the batch
        and the same content: duplicates.
    rejected : list of (int, str, str, str)
        ``(record number, raw record as JSON, reason, event id)`` (the id its own or derived); a
        later record with an id met earlier in the batch and other content is rejected as a conflict.
    """

    accepted: pa.Table
    repeated: list[tuple[int, str]]
    rejected: list[tuple[int, str, str, str]]

    @property
    def rows_read(self) -> int:
        """Records checked."""
        return self.accepted.num_rows + len(self.repeated) + len(self.rejected)


def quarantine_id(source: str, row: int, raw: str) -> str:
    """The quarantine key of a rejected record (as the file importers compute it in SQL)."""
    return hashlib.md5("\x1f".join((source, str(row), raw)).encode()).hexdigest()


def _checked(con: duckdb.DuckDBPyConnection, src: _Source, typed: str) -> pa.Table:
    """The typed rows with each valid row's place among the rows of its id (one statement: a
    statement of the check costs more to plan than to run on a batch)."""
    return con.sql(
        f"""SELECT s.* EXCLUDE (_h),
                   CASE WHEN _reason IS NULL AND _n > 1 AND _c <> _first THEN r.raw END AS _conflict_raw
            FROM (SELECT *, {_CONTENT} AS _c,
                         row_number() OVER (PARTITION BY _reason IS NULL, event_id ORDER BY _row) AS _n,
                         first_value({_CONTENT}) OVER (PARTITION BY _reason IS NULL, event_id ORDER BY _row) AS _first
                  FROM {typed}) s
            LEFT JOIN (SELECT _row, {_raw_json_sql(src)} AS raw FROM {src.relation}) r USING (_row)
            ORDER BY _row"""
    ).to_arrow_table()


def check_records(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    *,
    now: datetime | None = None,
    gap_minutes: float = 30.0,
) -> CheckedRecords:
    """Validate records of cartlift's schema with the importers' rules, without a store.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection to compute on (an in-memory one will do); it gains and drops temporary tables.
    table : pyarrow.Table
        The records (any column types: they are read as text, as the importers read files).
    now : datetime, optional
        The check's clock (times more than a day after it are refused); default now.
    gap_minutes : float
        Records without a session are cut into sessions by this inactivity gap.

    Returns
    -------
    CheckedRecords
    """
    now = now or datetime.now(UTC)
    columns = [c for c in CARTLIFT.columns if c in table.column_names]
    _require(CARTLIFT, columns, "the records")
    src = _Source(columns, stage_arrow(con, table, columns))
    typed = _typed_sql(CARTLIFT, src, now)
    try:
        out = _checked(con, src, f"({typed})")
        if pc.any(pc.and_(pc.is_null(out.column("_reason")), pc.is_null(out.column("session_id")))).as_py():
            # records without a session: cut sessions (needs the typed rows staged once)
            con.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS {typed}")
            con.execute(_sessionize_sql(gap_minutes))
            out = _checked(con, src, "_stage")
    finally:
        con.execute("DROP TABLE IF EXISTS _stage")
        con.execute("DROP TABLE IF EXISTS _raw")
    rows, reasons, raws, ids = (out.column(c).to_pylist() for c in ("_row", "_reason", "_raw", "event_id"))
    ns, conflicts = out.column("_n").to_pylist(), out.column("_conflict_raw").to_pylist()
    keep: list[int] = []
    repeated: list[tuple[int, str]] = []
    rejected: list[tuple[int, str, str, str]] = []
    for i, (row, reason, raw, event_id, n, conflict) in enumerate(
        zip(rows, reasons, raws, ids, ns, conflicts, strict=True)
    ):
        if reason is not None:
            rejected.append((int(row), str(raw), str(reason), str(event_id)))
        elif n == 1:
            keep.append(i)
        elif conflict is not None:
            rejected.append((int(row), str(conflict), CONFLICT_REASON, str(event_id)))
        else:
            repeated.append((int(row), str(event_id)))
    accepted = out.take(pa.array(keep, pa.int64())).select(
        [*STORED_COLUMNS, "title", "category", "brand", "_row"]
    )
    return CheckedRecords(accepted, repeated, rejected)
