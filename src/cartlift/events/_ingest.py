"""The ingest engine: any source format -> validated, deduplicated, transactional append.

Every format goes the same way, as SQL in DuckDB so that it streams and stays vectorised:

1. *check*: one pass reads the source as text into the format's canonical columns with the
   rejection reason of each row (NULL when valid) and keeps only a small summary: rejected
   records, products, counts, whether rows lack a session or carry ids the store may have;
   rows the CSV parser cannot split (a truncated last line ...) land in a rejects table with
   their line. Rejected records are then numbered (`_rejected_rows`);
2. *sessionize*: sources without sessions are staged once and get sessions from a 30-minute
   inactivity gap;
3. *commit*: in one transaction, rejected rows go to `quarantine`, valid rows whose event id is
   new stream from the source into `events`, their products go to `products`, and the load is
   recorded in `loads`. Anything failing rolls the whole load back, so the store is left
   exactly as it was.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cartlift.errors import DataError, StoreError
from cartlift.events._formats import (
    CARTLIFT,
    CARTLIFT_COLUMNS,
    Format,
    quote_ident,
    read_header,
    sniff_delimiter,
)
from cartlift.events._schema import EVENT_COLUMNS, EVENT_TYPES, PRODUCT_EVENT_TYPES

__all__ = [
    "DERIVED_ID_SQL",
    "UNKNOWN_EVENT_TYPE",
    "LoadResult",
    "ProgressCallback",
    "derive_event_ids",
    "load",
]

UNKNOWN_EVENT_TYPE = (
    f"unknown event type (known: {', '.join(EVENT_TYPES)}; map other names with"
    " `cartlift ingest --event-type NAME=TYPE` or a --mapping file)"
)
"""The quarantine reason of an event whose type is none of ours: it names the types and the option."""

ProgressCallback = Callable[[str, float], None]
"""Called with a stage label and its percentage done (0-100)."""

CANONICAL = (*CARTLIFT_COLUMNS, "title", "category", "brand")
"""What every format maps onto: the event columns, and the product attributes events may carry."""

TEXT_COLUMNS = (
    "event_id", "user_id", "session_id", "event_type", "product_id", "order_id",
    "channel", "device", "properties", "title", "category", "brand",
)  # fmt: skip
"""Canonical text columns: a NUL byte in any of them is refused (PostgreSQL cannot store one)."""

EARLIEST_TIME = "1970-01-01 00:00:00"
"""Events before this are refused: no store's history is older, and readers (Python's datetime,
PostgreSQL) break on years 0 and earlier."""

MAX_PRICE = 1e9
"""Largest unit price accepted: prices times quantities (whole numbers below 2**31) stay finite in every sum."""

# a NaN or Infinity token outside JSON strings: DuckDB's json_valid accepts them, strict readers do not
_NON_STRICT_JSON = r"""^(?:[^"]|"(?:[^"\\]|\\.)*")*[:\[,]\s*-?(?:NaN|Infinity)\b"""

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


def _row_number(numbered: bool) -> str:
    # a window over the whole source makes DuckDB read it on one thread: passes that need no
    # record numbers read the source without them, in parallel
    return "row_number() OVER ()" if numbered else "NULL::BIGINT"


def _csv_relation(path: Path, columns: Sequence[str], delimiter: str, *, numbered: bool = True) -> str:
    """DuckDB's parallel CSV reader; lines it cannot split go to a rejects table with their line."""
    cols = "{" + ", ".join(f"{_lit(c)}: 'VARCHAR'" for c in columns) + "}"
    rejects = "store_rejects=true, rejects_table='_rejects', rejects_scan='_reject_scans'"
    return (
        f"(SELECT {_row_number(numbered)} AS _row, * FROM read_csv("
        f"{_lit(str(path))}, header=true, auto_detect=false, delim={_lit(delimiter)}, quote='\"',"
        f" escape='\"', columns={cols}, {rejects}, strict_mode=true, max_line_size=10000000))"
    )


def _jsonl_relation(path: Path, columns: Sequence[str], *, numbered: bool = True) -> str:
    # a line that is not JSON must not stop the load: its fields read as NULL and it is quarantined
    fields = ", ".join(
        f"CASE WHEN json_valid(_line) THEN json_extract_string(_line, {_lit('$.' + c)}) END AS {quote_ident(c)}"
        for c in columns
    )
    return (
        f"(SELECT _row, _line, {fields} FROM (SELECT {_row_number(numbered)} AS _row, line AS _line"
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


@dataclass(frozen=True)
class _Source:
    """A source ready to read in SQL: its columns and how to read it (with or without parser rejects)."""

    columns: list[str]
    relation: str
    plain: str | None = None
    """The same source without record numbers, when numbering it costs a pass on one thread."""
    parser_rejects: bool = False
    has_lines: bool = False
    json_line: bool = False
    header_lines: int = 0


def _one_of(expr: str, values: Sequence[str]) -> str:
    # equalities, not IN (...): DuckDB plans an IN list as a join, several times slower per row
    return "(" + " OR ".join(f"{expr} = {_lit(v)}" for v in values) + ")"


def _checked_sql(fmt: Format, src: _Source, now: datetime, *, numbered: bool) -> str:
    """The source as canonical columns plus ``_reason``: why the row is rejected, NULL when valid."""
    present = set(src.columns)
    # columns a file lacks (optional ones of our own schema) read as NULL, so expressions stay simple
    missing = [c for c in fmt.columns if c not in present]
    pad = "".join(f", NULL::VARCHAR AS {quote_ident(c)}" for c in missing)
    canon = {name: fmt.select.get(name, "NULL") for name in CANONICAL}
    if canon["event_type"] != "NULL":
        canon["event_type"] = fmt.event_type_sql(canon["event_type"])
    selects = ", ".join(f"{sql} AS _c_{name}" for name, sql in canon.items())
    pre = fmt.pre_reason or "NULL"
    if src.json_line:  # JSON lines: a line that is not a JSON object says so first
        pre = f"CASE WHEN NOT coalesce(json_valid(_line), false) THEN 'invalid JSON' ELSE {pre} END"
    future = _lit((now + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S"))
    price = "try_cast(_c_price AS DOUBLE)"
    qty = "try_cast(_c_quantity AS DOUBLE)"
    texts = [f"_c_{c}" for c in TEXT_COLUMNS]
    nul = " OR ".join(f"coalesce(contains({c}, chr(0)), false)" for c in texts)
    reason = f"""CASE
        WHEN _pre IS NOT NULL THEN _pre
        WHEN {nul} THEN 'NUL byte in text'
        WHEN _c_event_id IS NOT NULL AND trim(_c_event_id) = '' THEN 'blank event id'
        WHEN _c_ts IS NULL THEN 'unparseable time'
        WHEN _c_ts > TIMESTAMP {future} THEN 'time in the future'
        WHEN _c_ts < TIMESTAMP {_lit(EARLIEST_TIME)} THEN 'time before {EARLIEST_TIME[:4]}'
        WHEN nullif(trim(_c_user_id), '') IS NULL THEN 'missing user'
        WHEN _c_event_type IS NULL OR NOT {_one_of("_c_event_type", EVENT_TYPES)} THEN {_lit(UNKNOWN_EVENT_TYPE)}
        WHEN {_one_of("_c_event_type", PRODUCT_EVENT_TYPES)} AND nullif(trim(_c_product_id), '') IS NULL
            THEN 'missing product'
        WHEN lower(trim(_c_price)) = 'true' OR lower(trim(_c_price)) = 'false'
            OR lower(trim(_c_quantity)) = 'true' OR lower(trim(_c_quantity)) = 'false'
            THEN 'a boolean is not a number'
        WHEN nullif(trim(_c_price), '') IS NOT NULL AND NOT coalesce(isfinite({price}), false)
            THEN 'unparseable price'
        WHEN {price} < 0 THEN 'negative price'
        WHEN {price} > {MAX_PRICE:.0f} THEN 'price above {MAX_PRICE:,.0f}'
        WHEN nullif(trim(_c_quantity), '') IS NOT NULL AND {qty} IS NULL THEN 'unparseable quantity'
        WHEN {qty} <= 0 OR {qty} <> floor({qty}) OR {qty} > 2147483647
            THEN 'quantity must be a positive whole number'
        WHEN _c_properties IS NOT NULL AND NOT coalesce(json_valid(_c_properties), false)
            THEN 'properties are not valid JSON'
        WHEN regexp_matches(_c_properties, {_lit(_NON_STRICT_JSON)}) THEN 'properties hold NaN or Infinity'
    END"""
    relation = src.relation if numbered or src.plain is None else src.plain
    return f"""SELECT *, {reason} AS _reason FROM (
            SELECT r.*, {selects}, {pre} AS _pre FROM (SELECT *{pad} FROM {relation}) r
        )"""


def _typed_sql(fmt: Format, src: _Source, now: datetime, *, numbered: bool = True) -> str:
    """The source as typed canonical columns plus ``_reason`` (NULL when valid).

    Raw columns are dropped; only rejected rows keep their raw record and its hash ``_h``, for
    the quarantine. Without ``numbered``, ``_row`` is NULL where numbering would cost a pass.
    """
    return f"""SELECT _row, _reason, CASE WHEN _reason IS NOT NULL THEN {_raw_json_sql(src)} END AS _raw,
               CASE WHEN _reason IS NOT NULL THEN {_raw_hash_sql(src)} END AS _h,
               coalesce(_c_event_id, {DERIVED_ID_SQL}) AS event_id, _c_ts AS ts, _c_user_id AS user_id, _c_session_id AS session_id,
               _c_event_type AS event_type, nullif(trim(_c_product_id), '') AS product_id,
               coalesce(try_cast(try_cast(_c_quantity AS DOUBLE) AS INTEGER), 1) AS quantity,
               try_cast(_c_price AS DOUBLE) AS price, _c_order_id AS order_id, _c_channel AS channel,
               _c_device AS device, _c_properties AS properties,
               _c_title AS title, _c_category AS category, _c_brand AS brand
        FROM ({_checked_sql(fmt, src, now, numbered=numbered)})"""


DERIVED_ID_SQL = """md5(concat_ws(chr(31),
    strftime(_c_ts, '%Y-%m-%dT%H:%M:%S.%f'), _c_user_id, coalesce(nullif(trim(_c_session_id), ''), ''),
    _c_event_type, coalesce(nullif(trim(_c_product_id), ''), ''),
    CAST(coalesce(try_cast(try_cast(_c_quantity AS DOUBLE) AS INTEGER), 1) AS VARCHAR),
    coalesce(CAST(try_cast(_c_price AS DOUBLE) AS VARCHAR), ''), coalesce(_c_order_id, '')))"""
"""The id of an event that arrives without one (the one id rule, README "Event ids").

An MD5 over the event's *typed* values, so any spelling of the same event gets the same id: the
instant in UTC to the microsecond (any ISO 8601 offset), user, session as given (empty when
none), type, product, quantity (1 when absent), price as a number (``19.9`` and ``"19.9"``
alike) and order. Channel, device and properties describe the event and are not part of it.
"""


def derive_event_ids(con: duckdb.DuckDBPyConnection, table: pa.Table) -> list[str | None]:
    """The id of each record of ``table`` (cartlift's schema): its own, else `DERIVED_ID_SQL`.

    None where a record is invalid in a way that leaves no id (its load quarantines it). Used
    where a caller must know a record's id before the load (the service answers per event).
    """
    columns = [c for c in CARTLIFT.columns if c in table.column_names]
    src = _Source(columns, stage_arrow(con, table, columns))
    try:
        rows = con.execute(
            f"SELECT event_id FROM ({_typed_sql(CARTLIFT, src, datetime.now(UTC))}) ORDER BY _row"
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS _raw")
    return [None if r[0] is None else str(r[0]) for r in rows]


def _sessionize_sql(gap_minutes: float) -> str:
    """Cut sessions where a user is inactive for more than the gap; ids stay stable across loads.

    A session id is the user id plus the session's first timestamp, so loading more of the same
    user's history later gives the same ids to the same sessions.
    """
    return f"""CREATE OR REPLACE TEMP TABLE _stage AS
        SELECT * EXCLUDE (_new, _start) REPLACE (coalesce(session_id,
                 user_id || '@' || strftime(_start, '%Y%m%dT%H%M%S')) AS session_id)
        FROM (
            SELECT *, max(CASE WHEN _new THEN ts END) OVER (
                       PARTITION BY user_id ORDER BY ts, _row ROWS UNBOUNDED PRECEDING) AS _start
            FROM (
                SELECT *, coalesce(ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts, _row)
                                   > INTERVAL {float(gap_minutes) * 60} SECONDS, true) AS _new
                FROM _stage WHERE _reason IS NULL AND session_id IS NULL
            )
        )
        UNION ALL BY NAME
        SELECT * FROM _stage WHERE NOT (_reason IS NULL AND session_id IS NULL)"""


def _raw_json_sql(src: _Source) -> str:
    if src.json_line:
        return "_line"
    pairs = ", ".join(f"{_lit(c)}, {quote_ident(c)}" for c in src.columns)
    return f"CAST(json_object({pairs}) AS VARCHAR)"


def _raw_hash_sql(src: _Source) -> str:
    """A 64-bit hash of the raw record: finds a rejected record again in a numbered pass."""
    return "hash(_line)" if src.json_line else f"hash({', '.join(quote_ident(c) for c in src.columns)})"


def _rejected_rows(con: duckdb.DuckDBPyConnection, src: _Source) -> str:
    """SQL of the rejected records (``_row, raw, reason``), numbered.

    The summary pass reads a source without record numbers where numbering costs a pass on one
    thread; its rejected records (usually few, or none) are then found again by their hash: one
    parallel pass writes a hash per record in file order (a table keeps the order of a source
    read without joins, so its row id is the record's position), and the records whose hash a
    rejected one has are the candidates. Only if that is ambiguous (a 64-bit hash shared with
    another record) does a second, exact pass number the records on one thread and compare them.
    """
    summary = "SELECT _row, raw, reason FROM _summary WHERE kind = 'rejected'"
    if src.plain is None:
        return summary
    expected = con.execute("SELECT coalesce(sum(n), 0) FROM _summary WHERE kind = 'rejected'").fetchall()[0][
        0
    ]
    if not expected:
        return summary
    rejected_hashes = "SELECT _h FROM _summary WHERE kind = 'rejected'"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _hashes AS SELECT {_raw_hash_sql(src)} AS _h FROM {src.plain}")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _located AS
            SELECT rowid - (SELECT min(rowid) FROM _hashes) + 1 AS _row, _h, NULL::VARCHAR AS raw
            FROM _hashes WHERE _h IN ({rejected_hashes})"""
    )

    def matched(exact: bool) -> str:
        on = "s._h = l._h AND s.raw = l.raw" if exact else "s._h = l._h"
        return f"SELECT l._row, s.raw, s.reason FROM _summary s JOIN _located l ON {on} WHERE s.kind = 'rejected'"

    bad = matched(exact=False)
    if con.execute(f"SELECT count(*) FROM ({bad})").fetchall()[0][0] == expected:
        return bad
    # numbering buffers its whole input, so it sees one hash per record and the raw record of
    # candidates only, not the records themselves
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _located AS
            SELECT * FROM (
                SELECT row_number() OVER () AS _row, _h, raw FROM (
                    SELECT _h, CASE WHEN _h IN ({rejected_hashes}) THEN {_raw_json_sql(src)} END AS raw
                    FROM (SELECT *, {_raw_hash_sql(src)} AS _h FROM {src.plain})))
            WHERE raw IS NOT NULL"""
    )
    bad = matched(exact=True)
    found = con.execute(f"SELECT count(*) FROM ({bad})").fetchall()[0][0]
    if found != expected:  # the source changed between the passes: refuse rather than lose rows
        raise DataError(
            f"{expected} rejected record(s) were read but {found} found again: did the file change during the load?"
        )
    return bad


# a NUL byte is kept visible in the quarantined record as the two characters \0, so PostgreSQL
# (whose text cannot hold one) stores the record like any other
_SAFE_RAW = "replace(raw, chr(0), '\\0')"


def _quarantine(con: duckdb.DuckDBPyConnection, result: LoadResult, src: _Source, bad: str, now: str) -> int:
    """Quarantine the rejected rows: ``bad`` (``_row, raw, reason``) and the parser's; returns their count."""
    # reading ``bad`` first also makes the CSV reader fill its rejects table, if it has not yet
    con.execute(f"CREATE OR REPLACE TEMP TABLE _bad AS {bad}")
    parser = (
        src.parser_rejects
        and con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_rejects'").fetchall()[0][0]
        and con.execute("SELECT count(*) FROM _rejects").fetchall()[0][0] > 0
    )
    hl = src.header_lines
    if parser:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _rej AS
               SELECT line, line - row_number() OVER (ORDER BY line) - {hl} + 1 AS before,
                      CASE reason {" ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in _PARSER_REASONS.items())}
                           ELSE lower(reason) END AS reason, raw
               FROM (SELECT line, min(error_type) AS reason, trim(first(csv_line), chr(10) || chr(13)) AS raw
                     FROM _rejects GROUP BY line)"""
        )
        # record numbers count every record, also those the parser rejected before this one
        row_sql = "b._row + (SELECT count(*) FROM _rej j WHERE j.before <= b._row)"
        rejects = f"UNION ALL SELECT line - {hl}, line, raw, reason FROM _rej"
    else:
        row_sql, rejects = "b._row", ""
    line_sql = f"{row_sql} + {hl}" if src.has_lines else "NULL"
    key = _lit(Path(result.source).name)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _rejected AS
            SELECT md5(concat_ws(chr(31), {key}, row_no, raw)) AS qid, * FROM (
                SELECT {row_sql} AS row_no, {line_sql} AS line, {_SAFE_RAW} AS raw, reason FROM _bad b {rejects})"""
    )
    con.execute(
        f"""INSERT INTO quarantine
            SELECT qid, {_lit(result.load_id)}, {_lit(result.source)}, row_no, line, raw, reason, TIMESTAMP {now}
            FROM _rejected WHERE qid NOT IN (SELECT quarantine_id FROM quarantine)"""
    ).fetchall()
    result.reasons = {
        str(r): int(n)
        for r, n in con.execute(
            "SELECT reason, count(*) FROM _rejected GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
    }
    result.quarantined = sum(result.reasons.values())
    return result.quarantined


def _append_events(
    con: duckdb.DuckDBPyConnection,
    result: LoadResult,
    rows: str,
    progress: ProgressCallback | None,
    *,
    known_ids: bool,
    staged: bool,
    conflicts: Callable[[str], int],
) -> int:
    """Append the valid rows whose event id the store does not have; within a load the first wins.

    Rows stream from the source straight into `events` (a staging copy of a large file would
    spill to disk). Only when the checking pass saw ids the store may already have
    (``known_ids``) does the insert compare with the stored ids: any join in the insert makes
    DuckDB append on one thread. An id repeated inside the load is found afterwards by one
    aggregate over this load's ids, and only its later copies are deleted: usually there are none.
    """
    load = _lit(result.load_id)
    columns = ", ".join(c for c in EVENT_COLUMNS if c != "load_id")
    stored = " AND event_id NOT IN (SELECT event_id FROM events)" if known_ids else ""
    # pushed below the projection, `_reason IS NULL` would inline every canonical expression
    # a second time (measured: +50 % CPU on this statement), so this statement filters in place
    con.execute("SET disabled_optimizers = 'filter_pushdown'")
    try:
        inserted = run_with_progress(
            con,
            f"""INSERT INTO events
                SELECT {columns}, {load} FROM ({rows})
                WHERE _reason IS NULL{stored}""",
            "appending events",
            progress,
        )[0][0]
    finally:
        con.execute("RESET disabled_optimizers")
    if staged:
        # a staged source (records, an API batch) is small and in memory: its own repeated ids,
        # also those the store already has, so a batch gets the same answer on either backend
        repeated = f"SELECT event_id FROM ({rows}) WHERE _reason IS NULL GROUP BY 1 HAVING count(*) > 1"
    else:
        # a streamed file: the ids repeated among the rows it added; candidates by a 64-bit hash
        # (8-byte keys aggregate far faster than the id strings), then the exact ids among them
        repeated = f"""SELECT event_id FROM events
            WHERE load_id = {load} AND hash(event_id) IN (
                SELECT hash(event_id) FROM events WHERE load_id = {load} GROUP BY 1 HAVING count(*) > 1)
            GROUP BY 1 HAVING count(*) > 1"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _repeated AS {repeated}")
    n_conflicts = 0
    if con.execute("SELECT count(*) FROM _repeated").fetchall()[0][0]:
        n_conflicts = conflicts("SELECT event_id FROM _repeated")
        repeated = con.execute(
            f"""DELETE FROM events WHERE rowid IN (
                    SELECT rowid FROM events
                    WHERE load_id = {load} AND event_id IN (SELECT event_id FROM _repeated)
                    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY rowid) > 1)"""
        ).fetchall()[0][0]
        inserted = int(inserted) - int(repeated)
    result.accepted = int(inserted)
    return n_conflicts


CONFLICT_REASON = "conflicting event id (an earlier event of this load has it, with other content)"


def _quarantine_conflicts(
    con: duckdb.DuckDBPyConnection, result: LoadResult, fmt: Format, src: _Source, started: datetime, ids: str
) -> int:
    """Quarantine the later copies of an id repeated in one load whose content differs from the first.

    Copies with the same content are duplicates (a retry); copies with other content are two
    events given one id, and saying so beats keeping one silently. Runs only when a load repeats
    an id (one more, numbered pass over the source); returns the copies quarantined.
    """
    typed = """_c_ts, _c_user_id, nullif(trim(_c_session_id), ''), _c_event_type, nullif(trim(_c_product_id), ''),
               coalesce(try_cast(try_cast(_c_quantity AS DOUBLE) AS INTEGER), 1), try_cast(_c_price AS DOUBLE),
               _c_order_id, _c_channel, _c_device, _c_properties"""
    line = f"_row + {src.header_lines}" if src.has_lines else "NULL"
    key = _lit(Path(result.source).name)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _conflicts AS
            SELECT md5(concat_ws(chr(31), {key}, _row, raw)) AS qid, _row, {line} AS line, raw FROM (
                SELECT _row, raw, h, first_value(h) OVER (PARTITION BY event_id ORDER BY _row) AS first_h
                FROM (SELECT _row, {_raw_json_sql(src)} AS raw, hash({typed}) AS h,
                             coalesce(_c_event_id, {DERIVED_ID_SQL}) AS event_id
                      FROM ({_checked_sql(fmt, src, started, numbered=True)}) WHERE _reason IS NULL)
                WHERE event_id IN ({ids}))
            WHERE h <> first_h"""
    )
    con.execute(
        f"""INSERT INTO quarantine
            SELECT qid, {_lit(result.load_id)}, {_lit(result.source)}, _row, line, raw, {_lit(CONFLICT_REASON)},
                   TIMESTAMP {_lit(started.isoformat(sep=" "))}
            FROM _conflicts WHERE qid NOT IN (SELECT quarantine_id FROM quarantine)"""
    )
    return int(con.execute("SELECT count(*) FROM _conflicts").fetchall()[0][0])


def _summarize_sql(rows: str, *, stored_events: bool) -> str:
    """One pass over the source that keeps all the rest of a load needs, in a small table.

    Rejected rows are kept one per record (or per identical record where the pass reads no
    record numbers: see `_rejected_rows`) with their raw record and reason, valid rows are
    aggregated per product (count and latest attributes), and valid rows without a session are
    counted apart, so the loader knows whether sessions must be cut. With ``stored_events``,
    valid rows whose id hash the store has are counted apart (``known``): only then must the
    insert compare ids with the store's.
    """
    known = (
        "CASE WHEN _reason IS NULL THEN hash(event_id) IN (SELECT hash(event_id) FROM events) END"
        if stored_events
        else "NULL::BOOLEAN"
    )
    return f"""CREATE TEMP TABLE _summary AS
        SELECT CASE WHEN _reason IS NOT NULL THEN 'rejected'
                    WHEN session_id IS NULL THEN 'no session' ELSE 'valid' END AS kind,
               CASE WHEN _reason IS NOT NULL THEN _row END AS _row,
               CASE WHEN _reason IS NOT NULL THEN _h END AS _h,
               CASE WHEN _reason IS NOT NULL THEN _raw END AS raw,
               CASE WHEN _reason IS NULL THEN product_id END AS product_id,
               {known} AS known, count(*) AS n, max(ts) AS last_ts, any_value(_reason) AS reason,
               max_by(title, ts) FILTER (WHERE title IS NOT NULL) AS title,
               max_by(category, ts) FILTER (WHERE category IS NOT NULL) AS category,
               max_by(brand, ts) FILTER (WHERE brand IS NOT NULL) AS brand,
               max_by(price, ts) FILTER (WHERE price > 0) AS price
        FROM ({rows}) GROUP BY ALL"""


def _upsert_products(con: duckdb.DuckDBPyConnection) -> None:
    """Add the products the valid events mention (latest attributes win, gaps keep stored values)."""
    con.execute(
        """INSERT INTO products (product_id, title, category, brand, price)
           SELECT product_id, max_by(title, last_ts), max_by(category, last_ts), max_by(brand, last_ts),
                  max_by(price, last_ts)
           FROM _summary WHERE kind <> 'rejected' AND product_id IS NOT NULL GROUP BY product_id
           ON CONFLICT (product_id) DO UPDATE SET
               title = coalesce(excluded.title, title),
               category = coalesce(excluded.category, category),
               brand = coalesce(excluded.brand, brand),
               price = coalesce(excluded.price, price)"""
    ).fetchall()


@contextmanager
def committed_load(con: duckdb.DuckDBPyConnection, result: LoadResult, started: datetime) -> Iterator[None]:
    """One transaction for everything a load writes, ending with its row in `loads`.

    Any error (or Ctrl-C) rolls all of it back, so the store is left exactly as it was; the
    temporary tables of the load are dropped either way.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        yield
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
        con.execute("COMMIT")
    except BaseException as e:
        con.execute("ROLLBACK")
        if isinstance(e, duckdb.Error):
            raise StoreError(f"Loading {result.source!r} failed and nothing was written: {e}") from e
        raise
    finally:
        for name in _TEMP:
            con.execute(f"DROP TABLE IF EXISTS {name}")


_TEMP = (
    "_stage",
    "_raw",
    "_rejects",
    "_reject_scans",
    "_rej",
    "_rejected",
    "_summary",
    "_located",
    "_bad",
    "_hashes",
    "_repeated",
    "_conflicts",
)


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

    The source streams through SQL twice (re-reading a file is cheaper than staging it, which
    spills to disk once a load outgrows memory): a first pass summarizes rejected rows and
    products into a small table; then, in one transaction, rejected rows go to `quarantine`, new
    events stream into `events`, their products go to `products`, and the load to `loads`. Sources without sessions are staged once, because cutting
    sessions needs each user's events in order. On any error nothing is written.
    """
    if (path is None) == (table is None):
        raise ValueError("load() takes exactly one of path= or table=")
    started = datetime.now(UTC).replace(tzinfo=None)
    now = _lit(started.isoformat(sep=" "))
    result = LoadResult(load_id=uuid.uuid4().hex, source=source or str(path or "python"), format=fmt.name)
    for name in _TEMP:
        con.execute(f"DROP TABLE IF EXISTS {name}")
    src = _plan(con, fmt, path, table, batch_rows)
    rows = _typed_sql(fmt, src, started, numbered=False)
    try:
        stored = bool(con.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchall()[0][0])
        run_with_progress(con, _summarize_sql(rows, stored_events=stored), "checking rows", progress)
        if con.execute("SELECT count(*) FROM _summary WHERE kind = 'no session'").fetchall()[0][0]:
            # cutting sessions needs each user's events in order (ties in record order): stage once
            numbered = _typed_sql(fmt, src, started)
            run_with_progress(con, f"CREATE TEMP TABLE _stage AS {numbered}", "reading", progress)
            run_with_progress(con, _sessionize_sql(gap_minutes), "sessionizing", progress)
            rows = "SELECT * FROM _stage"
        # outside the load's transaction, where a new table's row ids are its rows' positions
        bad = _rejected_rows(con, src)
    except duckdb.Error as e:
        raise DataError(f"Cannot read {result.source!r} as {fmt.name}: {e}") from e
    with committed_load(con, result, started):
        _quarantine(con, result, src, bad, now)
        known = con.execute("SELECT coalesce(bool_or(known), false) FROM _summary").fetchall()[0][0]
        conflicts = _append_events(
            con,
            result,
            rows,
            progress,
            known_ids=bool(known),
            staged=table is not None,
            conflicts=lambda ids: _quarantine_conflicts(con, result, fmt, src, started, ids),
        )
        _upsert_products(con)
        valid = int(
            con.execute("SELECT coalesce(sum(n), 0) FROM _summary WHERE kind <> 'rejected'").fetchall()[0][0]
        )
        result.rows_read = valid + result.quarantined
        if conflicts:
            result.reasons[CONFLICT_REASON] = conflicts
            result.quarantined += conflicts
        result.duplicates = valid - result.accepted - conflicts
    return result


def _plan(
    con: duckdb.DuckDBPyConnection, fmt: Format, path: Path | None, table: pa.Table | None, batch_rows: int
) -> _Source:
    """Which columns the source has, how to read it, and what its reader can say about lines."""
    if table is not None:
        columns = [c for c in fmt.columns if c in table.column_names]
        _require(fmt, columns, "the table")
        name = stage_arrow(con, table, columns)
        return _Source(columns, name)
    assert path is not None
    if not path.exists():
        raise DataError(f"No such file: {str(path)!r}.")
    suffix = path.suffix.lower()
    header = read_header(path)
    by_lower = {c.lower(): c for c in fmt.columns}
    where = repr(str(path))
    if suffix in (".jsonl", ".ndjson", ".json") or (
        suffix not in (".xlsx", ".xlsm", ".parquet") and _starts_with_brace(path)
    ):
        columns = [c for c in fmt.columns if c in header]
        _require(fmt, columns, where)
        rel = _jsonl_relation(path, columns)
        plain = _jsonl_relation(path, columns, numbered=False)
        return _Source(columns, rel, plain, has_lines=True, json_line=True)
    if suffix in (".xlsx", ".xlsm"):
        columns = [by_lower.get(h.lower(), h) for h in header]
        _require(fmt, columns, where)
        name = _stage_xlsx(con, path, columns, batch_rows)
        return _Source(columns, name, has_lines=True, header_lines=1)
    if suffix == ".parquet":
        columns = [c for c in header if c in fmt.columns]
        _require(fmt, columns, where)
        rel = _parquet_relation(path, columns)
        return _Source(columns, rel)
    if len(header) <= 1:
        raise DataError(
            f"The header of {where} does not look like {fmt.name} ({', '.join(fmt.columns)}). "
            "Check --format, or use --format auto."
        )
    columns = [by_lower.get(h.lower(), h) for h in header]
    _require(fmt, columns, where)
    delimiter = sniff_delimiter(path)
    return _Source(
        columns,
        _csv_relation(path, columns, delimiter),
        _csv_relation(path, columns, delimiter, numbered=False),
        parser_rejects=True,
        has_lines=True,
        header_lines=1,
    )


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
