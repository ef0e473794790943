"""The ingest engine: any source format -> validated, deduplicated, transactional append.

Every format goes the same way, as SQL in DuckDB so that it streams and stays vectorised:

1. *stage*: the source is read as text into a temporary table, with its record number, the
   format's canonical columns and the rejection reason of each row (NULL when valid); rows the
   CSV parser cannot split (a truncated last line ...) land in a rejects table with their line;
2. *sessionize*: sources without sessions get them from a 30-minute inactivity gap;
3. *commit*: in one transaction, rejected rows go to `quarantine`, valid rows whose event id is
   new go to `events`, their products to `products`, and the load is recorded in `loads`.
   Anything failing rolls the whole load back, so the store is left exactly as it was.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cartlift.errors import DataError, StoreError
from cartlift.events._formats import Format, quote_ident, read_header, sniff_delimiter
from cartlift.events._schema import EVENT_TYPES, PRODUCT_EVENT_TYPES

__all__ = ["LoadResult", "ProgressCallback", "load"]

ProgressCallback = Callable[[str, float], None]
"""Called with a stage label and its percentage done (0-100)."""

CANONICAL = (
    "event_id",
    "ts",
    "user_id",
    "session_id",
    "event_type",
    "product_id",
    "quantity",
    "price",
    "order_id",
    "channel",
    "device",
    "properties",
    "title",
    "category",
    "brand",
)

# DuckDB's CSV reject types, in words a store owner understands
_PARSER_REASONS = {
    "MISSING COLUMNS": "truncated line (missing columns)",
    "TOO MANY COLUMNS": "too many columns",
    "UNQUOTED VALUE": "malformed quoting",
    "INVALID ENCODING": "invalid text encoding",
    "INVALID UNICODE": "invalid text encoding",
    "LINE SIZE OVER MAXIMUM": "line too long",
}


@dataclass
class LoadResult:
    """What one load did. ``accepted + duplicates + quarantined == rows_read``."""

    load_id: str
    source: str
    format: str
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``cartlift ingest --json`` shape."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "reasons": dict(self.reasons),
            "rows_read": self.rows_read,
            "source": self.source,
            "format": self.format,
            "load_id": self.load_id,
        }


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def run_with_progress(
    con: duckdb.DuckDBPyConnection, sql: str, label: str, progress: ProgressCallback | None
) -> list[tuple[Any, ...]]:
    """Run ``sql``; while it runs, report DuckDB's own progress estimate to ``progress``."""
    if progress is None:
        return con.execute(sql).fetchall()
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.2):
            pct = con.query_progress()
            if pct >= 0:
                progress(label, pct)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        return con.execute(sql).fetchall()
    finally:
        done.set()
        watcher.join()
        progress(label, 100.0)


# ----------------------------------------------------------------------------------------------
# 1. readers: each returns the SQL of a relation with `_row` and the raw columns as text
# ----------------------------------------------------------------------------------------------


def _csv_relation(path: Path, columns: Sequence[str], delimiter: str) -> str:
    cols = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in columns) + "}"
    return (
        "(SELECT row_number() OVER () AS _row, * FROM read_csv("
        f"{_lit(str(path))}, header=true, auto_detect=false, delim={_lit(delimiter)}, quote='\"',"
        f" escape='\"', columns={cols}, store_rejects=true, rejects_table='_rejects',"
        " rejects_scan='_reject_scans', strict_mode=true, max_line_size=10000000))"
    )


def _jsonl_relation(path: Path, columns: Sequence[str]) -> str:
    fields = ", ".join(f"json_extract_string(_line, {_lit('$.' + c)}) AS {quote_ident(c)}" for c in columns)
    return (
        f"(SELECT _row, _line, {fields} FROM (SELECT row_number() OVER () AS _row, line AS _line"
        f" FROM read_csv({_lit(str(path))}, header=false, auto_detect=false, delim='\\x01', quote='',"
        " escape='', columns={'line': 'VARCHAR'}, max_line_size=10000000) WHERE trim(line) <> ''))"
    )


def _parquet_relation(path: Path, columns: Sequence[str]) -> str:
    fields = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}" for c in columns)
    return f"(SELECT file_row_number + 1 AS _row, {fields} FROM read_parquet({_lit(str(path))}, file_row_number=true))"


def _xlsx_batches(path: Path, batch_rows: int) -> Iterator[tuple[list[str], list[list[str | None]]]]:
    """Stream an xlsx sheet as (header, rows of text) batches without loading the workbook."""
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = wb.active.iter_rows(values_only=True)
        header = [str(c) for c in next(rows, ()) if c is not None]
        batch: list[list[str | None]] = []
        for row in rows:
            values = [None if v is None else _cell_text(v) for v in row[: len(header)]]
            batch.append(values + [None] * (len(header) - len(values)))
            if len(batch) >= batch_rows:
                yield header, batch
                batch = []
        if batch:
            yield header, batch
    finally:
        wb.close()


def _cell_text(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def stage_arrow(con: duckdb.DuckDBPyConnection, table: pa.Table, columns: Sequence[str]) -> str:
    """Put an Arrow table (from Python or an HTTP batch) where the SQL pipeline reads it."""
    text = pa.table(
        {
            "_row": pa.array(range(1, table.num_rows + 1), pa.int64()),
            **{
                c: (
                    table.column(c).cast(pa.string())
                    if c in table.column_names
                    else pa.nulls(table.num_rows, pa.string())
                )
                for c in columns
            },
        }
    )
    con.execute("DROP TABLE IF EXISTS _raw")
    con.register("_raw_arrow", text)
    try:
        con.execute("CREATE TEMP TABLE _raw AS SELECT * FROM _raw_arrow")
    finally:
        con.unregister("_raw_arrow")
    return "_raw"


def _stage_xlsx(con: duckdb.DuckDBPyConnection, path: Path, columns: Sequence[str], batch_rows: int) -> str:
    con.execute("DROP TABLE IF EXISTS _raw")
    defs = ", ".join(f"{quote_ident(c)} VARCHAR" for c in columns)
    con.execute(f"CREATE TEMP TABLE _raw (_row BIGINT, {defs})")
    offset = 0
    for header, rows in _xlsx_batches(path, batch_rows):
        index = {h: i for i, h in enumerate(header)}
        arrays = {
            "_row": pa.array(range(offset + 1, offset + len(rows) + 1), pa.int64()),
            **{
                c: pa.array([r[index[c]] if c in index else None for r in rows], pa.string()) for c in columns
            },
        }
        con.register("_batch", pa.table(arrays))
        con.execute("INSERT INTO _raw SELECT * FROM _batch")
        con.unregister("_batch")
        offset += len(rows)
    return "_raw"


# ----------------------------------------------------------------------------------------------
# 2. the canonical stage with one reason per row
# ----------------------------------------------------------------------------------------------


def _stage_sql(fmt: Format, relation: str, columns: Sequence[str], now: datetime, json_line: bool) -> str:
    present = set(columns)

    def expr(name: str) -> str:
        sql = fmt.select.get(name)
        if sql is None:
            return "NULL"
        # a format column missing from this file (optional columns of our own schema) reads as NULL
        for c in fmt.columns:
            if c not in present and c in sql:
                sql = sql.replace(quote_ident(c), "NULL") if quote_ident(c) in sql else _blank(sql, c)
        return sql

    canon = {name: expr(name) for name in CANONICAL}
    canon["event_type"] = fmt.event_type_sql(canon["event_type"]) if canon["event_type"] != "NULL" else "NULL"
    hashed = ", ".join(f"coalesce({quote_ident(c)}, '')" for c in fmt.id_columns if c in present)
    canon["event_id"] = f"coalesce({canon['event_id']}, md5(concat_ws(chr(31), {hashed})))"
    selects = ", ".join(f"{sql} AS _c_{name}" for name, sql in canon.items())
    pre = fmt.pre_reason or "NULL"
    if json_line:  # JSON lines: a line that is not a JSON object says so first
        pre = f"CASE WHEN NOT coalesce(json_valid(_line), false) THEN 'invalid JSON' ELSE {pre} END"
    types = ", ".join(_lit(t) for t in EVENT_TYPES)
    product_types = ", ".join(_lit(t) for t in PRODUCT_EVENT_TYPES)
    future = _lit((now + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S"))
    reason = f"""CASE
        WHEN _pre IS NOT NULL THEN _pre
        WHEN _c_ts IS NULL THEN 'unparseable time'
        WHEN _c_ts > TIMESTAMP {future} THEN 'time in the future'
        WHEN nullif(trim(_c_user_id), '') IS NULL THEN 'missing user'
        WHEN _c_event_type IS NULL OR _c_event_type NOT IN ({types}) THEN 'unknown event type'
        WHEN _c_event_type IN ({product_types}) AND nullif(trim(_c_product_id), '') IS NULL
            THEN 'missing product'
        WHEN nullif(trim(_c_price), '') IS NOT NULL AND NOT isfinite(try_cast(_c_price AS DOUBLE))
            THEN 'unparseable price'
        WHEN nullif(trim(_c_price), '') IS NOT NULL AND try_cast(_c_price AS DOUBLE) IS NULL
            THEN 'unparseable price'
        WHEN try_cast(_c_price AS DOUBLE) < 0 THEN 'negative price'
        WHEN nullif(trim(_c_quantity), '') IS NOT NULL AND try_cast(_c_quantity AS DOUBLE) IS NULL
            THEN 'unparseable quantity'
        WHEN try_cast(_c_quantity AS DOUBLE) <= 0
            OR try_cast(_c_quantity AS DOUBLE) <> floor(try_cast(_c_quantity AS DOUBLE))
            OR try_cast(_c_quantity AS DOUBLE) > 2147483647
            THEN 'quantity must be a positive whole number'
    END"""
    return f"""CREATE TEMP TABLE _stage AS
        SELECT *, {reason} AS _reason FROM (
            SELECT r.*, {selects}, {pre} AS _pre FROM {relation} r
        )"""


def _blank(sql: str, column: str) -> str:
    """Replace a bare (unquoted) reference to ``column`` with NULL."""
    import re

    return re.sub(rf"(?<![\w\"']){re.escape(column)}(?![\w\"'])", "NULL", sql)


def _sessionize_sql(gap_minutes: float) -> str:
    """Cut sessions where a user is inactive for more than the gap; ids stay stable across loads.

    A session id is the user id plus the session's first timestamp, so loading more of the same
    user's history later gives the same ids to the same sessions.
    """
    return f"""CREATE OR REPLACE TEMP TABLE _stage AS
        SELECT * REPLACE (coalesce(_c_session_id,
                 _c_user_id || '@' || strftime(_start, '%Y%m%dT%H%M%S')) AS _c_session_id)
        FROM (
            SELECT *, max(CASE WHEN _new THEN _c_ts END) OVER (
                       PARTITION BY _c_user_id ORDER BY _c_ts, _row ROWS UNBOUNDED PRECEDING) AS _start
            FROM (
                SELECT *, coalesce(_c_ts - lag(_c_ts) OVER (PARTITION BY _c_user_id ORDER BY _c_ts, _row)
                                   > INTERVAL {float(gap_minutes) * 60} SECONDS, true) AS _new
                FROM _stage WHERE _reason IS NULL AND _c_session_id IS NULL
            )
        )
        UNION ALL BY NAME
        SELECT *, NULL AS _new, NULL AS _start FROM _stage WHERE NOT (_reason IS NULL AND _c_session_id IS NULL)"""


# ----------------------------------------------------------------------------------------------
# 3. the transactional commit
# ----------------------------------------------------------------------------------------------


def _commit(
    con: duckdb.DuckDBPyConnection,
    result: LoadResult,
    columns: Sequence[str],
    has_rejects: bool,
    has_lines: bool,
    header_lines: int,
    started: datetime,
    raw_sql: str,
) -> None:
    source = _lit(result.source)
    key = _lit(Path(result.source).name)
    load = _lit(result.load_id)
    now = _lit(datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" "))
    parser_reason = ""
    if has_rejects:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _rej AS
               SELECT line, line - row_number() OVER (ORDER BY line) AS before, reason, raw FROM (
                   SELECT line, min(error_type) AS reason, trim(first(csv_line), chr(10) || chr(13)) AS raw
                   FROM _rejects GROUP BY line)"""
        )
        # record numbers count every record, also those the parser rejected before this one
        row_sql = "s._row + (SELECT count(*) FROM _rej j WHERE j.before < s._row)"
        parser_reason = (
            "CASE j.reason "
            + " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in _PARSER_REASONS.items())
            + " ELSE lower(j.reason) END"
        )
        rejects = f"UNION ALL SELECT j.line - {header_lines}, j.line, j.raw, {parser_reason} FROM _rej j"
    else:
        row_sql = "s._row"
        rejects = ""
    line_sql = f"{row_sql} + {header_lines}" if has_lines else "NULL"
    q = con.execute(
        f"""INSERT INTO quarantine
            SELECT md5(concat_ws(chr(31), {key}, row_no, raw)), {load}, {source}, row_no, line, raw, reason,
                   TIMESTAMP {now}
            FROM (SELECT {row_sql} AS row_no, {line_sql} AS line, {raw_sql} AS raw,
                         s._reason AS reason
                  FROM _stage s WHERE s._reason IS NOT NULL {rejects}) q
            WHERE md5(concat_ws(chr(31), {key}, row_no, raw)) NOT IN (SELECT quarantine_id FROM quarantine)"""
    )
    q.fetchall()
    reasons = con.execute(
        f"""SELECT reason, count(*) FROM (
                SELECT _reason AS reason FROM _stage WHERE _reason IS NOT NULL
                {"UNION ALL SELECT " + parser_reason + " FROM _rej j" if has_rejects else ""}
            ) GROUP BY reason ORDER BY count(*) DESC, reason"""
    ).fetchall()
    result.reasons = {str(r): int(n) for r, n in reasons}
    result.quarantined = sum(result.reasons.values())
    valid = con.execute("SELECT count(*) FROM _stage WHERE _reason IS NULL").fetchall()[0][0]
    inserted = con.execute(
        f"""INSERT INTO events
            SELECT _c_event_id, _c_ts, _c_user_id, _c_session_id, _c_event_type, nullif(trim(_c_product_id), ''),
                   coalesce(try_cast(try_cast(_c_quantity AS DOUBLE) AS INTEGER), 1),
                   try_cast(_c_price AS DOUBLE), _c_order_id, _c_channel, _c_device, _c_properties, {load}
            FROM _stage s
            WHERE _reason IS NULL AND _c_event_id NOT IN (SELECT event_id FROM events)
            QUALIFY row_number() OVER (PARTITION BY _c_event_id ORDER BY _row) = 1"""
    ).fetchall()[0][0]
    result.accepted = int(inserted)
    result.duplicates = int(valid) - result.accepted
    result.rows_read = result.accepted + result.duplicates + result.quarantined
    con.execute(
        """INSERT INTO products (product_id, title, category, brand, price)
           SELECT nullif(trim(_c_product_id), ''),
                  max_by(_c_title, _c_ts) FILTER (WHERE _c_title IS NOT NULL),
                  max_by(_c_category, _c_ts) FILTER (WHERE _c_category IS NOT NULL),
                  max_by(_c_brand, _c_ts) FILTER (WHERE _c_brand IS NOT NULL),
                  max_by(try_cast(_c_price AS DOUBLE), _c_ts) FILTER (WHERE try_cast(_c_price AS DOUBLE) > 0)
           FROM _stage WHERE _reason IS NULL AND nullif(trim(_c_product_id), '') IS NOT NULL
           GROUP BY 1
           ON CONFLICT (product_id) DO UPDATE SET
               title = coalesce(excluded.title, title),
               category = coalesce(excluded.category, category),
               brand = coalesce(excluded.brand, brand),
               price = coalesce(excluded.price, price)"""
    ).fetchall()
    con.execute(
        "INSERT INTO loads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            result.load_id,
            result.source,
            result.format,
            started,
            datetime.now(UTC).replace(tzinfo=None),
            result.rows_read,
            result.accepted,
            result.duplicates,
            result.quarantined,
        ],
    ).fetchall()


def _raw_json_sql(columns: Sequence[str], has_json_line: bool) -> str:
    if has_json_line:
        return "s._line"
    pairs = ", ".join(f"{_lit(c)}, s.{quote_ident(c)}" for c in columns)
    return f"CAST(json_object({pairs}) AS VARCHAR)"


def load(
    con: duckdb.DuckDBPyConnection,
    fmt: Format,
    *,
    path: Path | None = None,
    table: pa.Table | None = None,
    source: str | None = None,
    gap_minutes: float = 30.0,
    batch_rows: int = 50_000,
    progress: ProgressCallback | None = None,
) -> LoadResult:
    """Load a file (``path``) or an Arrow table (``table``) of format ``fmt`` into the store on ``con``.

    Returns the counts. On any error nothing is written and the error is raised.
    """
    if (path is None) == (table is None):
        raise ValueError("load() takes exactly one of path= or table=")
    started = datetime.now(UTC).replace(tzinfo=None)
    result = LoadResult(load_id=uuid.uuid4().hex, source=source or str(path or "python"), format=fmt.name)
    for name in ("_stage", "_raw", "_rejects", "_reject_scans", "_rej"):
        con.execute(f"DROP TABLE IF EXISTS {name}")
    columns, relation, has_rejects, has_lines, json_line, header_lines = _plan(
        con, fmt, path, table, batch_rows
    )
    try:
        run_with_progress(
            con, _stage_sql(fmt, relation, columns, started, json_line), "reading and validating", progress
        )
        if has_rejects:
            has_rejects = con.execute("SELECT count(*) FROM _rejects").fetchall()[0][0] > 0
        if con.execute(
            "SELECT count(*) FROM _stage WHERE _reason IS NULL AND _c_session_id IS NULL"
        ).fetchall()[0][0]:
            run_with_progress(con, _sessionize_sql(gap_minutes), "sessionizing", progress)
    except duckdb.Error as e:
        raise DataError(f"Cannot read {result.source!r} as {fmt.name}: {e}") from e
    con.execute("BEGIN TRANSACTION")
    try:
        _commit(
            con,
            result,
            columns,
            has_rejects,
            has_lines,
            header_lines,
            started,
            _raw_json_sql(columns, json_line),
        )
        con.execute("COMMIT")
    except BaseException as e:
        con.execute("ROLLBACK")
        if isinstance(e, duckdb.Error):
            raise StoreError(f"Loading {result.source!r} failed and nothing was written: {e}") from e
        raise
    finally:
        for name in ("_stage", "_raw", "_rej"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
    return result


def _plan(
    con: duckdb.DuckDBPyConnection, fmt: Format, path: Path | None, table: pa.Table | None, batch_rows: int
) -> tuple[list[str], str, bool, bool, bool, int]:
    """Columns present, the raw relation, and what the reader can say about lines."""
    if table is not None:
        columns = [c for c in fmt.columns if c in table.column_names]
        _require(fmt, columns, "the table")
        return columns, stage_arrow(con, table, columns), False, False, False, 0
    assert path is not None
    if not path.exists():
        raise DataError(f"No such file: {str(path)!r}.")
    suffix = path.suffix.lower()
    header = read_header(path)
    by_lower = {c.lower(): c for c in fmt.columns}
    if suffix in (".jsonl", ".ndjson", ".json") or (
        suffix not in (".xlsx", ".xlsm", ".parquet") and _starts_with_brace(path)
    ):
        columns = [c for c in fmt.columns if c in header]
        _require(fmt, columns, repr(str(path)))
        return columns, _jsonl_relation(path, columns), False, True, True, 0
    if suffix in (".xlsx", ".xlsm"):
        columns = [by_lower.get(h.lower(), h) for h in header]
        _require(fmt, columns, repr(str(path)))
        return columns, _stage_xlsx(con, path, columns, batch_rows), False, True, False, 1
    if suffix == ".parquet":
        columns = [c for c in header if c in fmt.columns]
        _require(fmt, columns, repr(str(path)))
        return columns, _parquet_relation(path, columns), False, False, False, 0
    delimiter = sniff_delimiter(path)
    if len(header) <= 1:
        raise DataError(
            f"The header of {str(path)!r} does not look like {fmt.name} ({', '.join(fmt.columns)}). "
            "Check --format, or use --format auto."
        )
    columns = [by_lower.get(h.lower(), h) for h in header]
    _require(fmt, columns, repr(str(path)))
    return columns, _csv_relation(path, columns, delimiter), True, True, False, 1


def _starts_with_brace(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(1) == b"{"


def _require(fmt: Format, columns: Sequence[str], where: str) -> None:
    missing = [c for c in fmt.columns if c not in columns and c not in fmt.optional_columns]
    if missing:
        raise DataError(
            f"{where} lacks the {fmt.name} column(s) {', '.join(missing)}; "
            f"a {fmt.name} source has: {', '.join(fmt.columns)}."
        )
