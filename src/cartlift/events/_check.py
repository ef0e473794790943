"""The importers' validation as a function: records in, accepted typed rows and rejected rows out.

`check_records` runs the same SQL as every load (`_typed_sql`: one reason per record, the one id
rule, sessions cut by the same gap) on a DuckDB connection used only as a calculator: it reads
no store and writes none. A caller that owns its own store (the service's writer, on DuckDB or
PostgreSQL) stores what it returns in its own transaction, so nothing is parsed twice: the typed
rows it returns are the rows stored and the rows the live sessions take in.

Planning that SQL costs DuckDB about 10 ms whatever the batch's size, which is most of the cost
of a posted batch. So records given in Python first go through `accept_typed`, a shortcut that
only ever *accepts*: it types a record the way the SQL would (same trimming, the same instant in
UTC, numbers parsed as DuckDB parses them, the one id rule) when its values are spelled in a way
it is certain of, and gives up on the whole batch otherwise: any record the SQL might reject, a
record without a session (sessions are cut in SQL), an id repeated with other content (the
quarantine keeps its raw record). A batch it gives up on is checked by the SQL, so every reason
is the SQL's own; tests/events/test_check_typed.py shows on hostile records that the shortcut
answers exactly as the SQL does wherever it answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cartlift.errors import DataError
from cartlift.events._formats import CARTLIFT
from cartlift.events._ingest import (
    CONFLICT_REASON,
    EARLIEST_TIME,
    MAX_PRICE,
    _raw_json_sql,
    _require,
    _sessionize_sql,
    _Source,
    _typed_sql,
    stage_arrow,
)
from cartlift.events._schema import EVENT_COLUMNS, EVENT_TYPES, PRODUCT_EVENT_TYPES

__all__ = [
    "STORED_COLUMNS",
    "CheckedRecords",
    "accept_rows",
    "accept_typed",
    "check_records",
    "quarantine_id",
    "records_table",
    "typed_rows",
]

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
    rows : list of tuples, optional
        ``accepted`` as Python tuples of `STORED_COLUMNS`, when `accept_rows` built it.
    """

    accepted: pa.Table
    repeated: list[tuple[int, str]]
    rejected: list[tuple[int, str, str, str]]
    rows: list[tuple[Any, ...]] | None = field(default=None, compare=False)
    """The accepted rows as Python tuples (`STORED_COLUMNS` order) when the shortcut typed them:
    what live state takes in without reading the Arrow table back."""

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
    records: pa.Table | Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
    gap_minutes: float = 30.0,
) -> CheckedRecords:
    """Validate records of cartlift's schema with the importers' rules, without a store.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection to compute on (an in-memory one will do); it gains and drops temporary
        tables, and its time zone is set to UTC (times without an offset are UTC, as in a load).
    records : pyarrow.Table or sequence of mappings
        The records. A table's columns may have any type: they are read as text, as the
        importers read files. Python records go through `accept_typed` first, and through the
        SQL when it gives up.
    now : datetime, optional
        The check's clock (times more than a day after it are refused); default now.
    gap_minutes : float
        Records without a session are cut into sessions by this inactivity gap.

    Returns
    -------
    CheckedRecords
    """
    now = now or datetime.now(UTC)
    if not isinstance(records, pa.Table):
        accepted = accept_typed(records, now=now)
        if accepted is not None:
            return accepted
        records = records_table(records)
    return _check_sql(con, records, now, gap_minutes)


def _check_sql(
    con: duckdb.DuckDBPyConnection, table: pa.Table, now: datetime, gap_minutes: float
) -> CheckedRecords:
    """`check_records` by the importers' SQL."""
    columns = [c for c in CARTLIFT.columns if c in table.column_names]
    _require(CARTLIFT, columns, "the records")
    con.execute("SET TimeZone = 'UTC'")
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
    accepted = out.take(pa.array(keep, pa.int64())).select(list(ACCEPTED_SCHEMA.names))
    return CheckedRecords(accepted.cast(ACCEPTED_SCHEMA), repeated, rejected)


# ----------------------------------------------------------------------------------------------
# the shortcut for records given in Python
# ----------------------------------------------------------------------------------------------

ACCEPTED_SCHEMA: Final = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.timestamp("us")),
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("event_type", pa.string()),
        ("product_id", pa.string()),
        ("quantity", pa.int32()),
        ("price", pa.float64()),
        ("order_id", pa.string()),
        ("channel", pa.string()),
        ("device", pa.string()),
        ("properties", pa.string()),
        ("title", pa.string()),
        ("category", pa.string()),
        ("brand", pa.string()),
        ("_row", pa.int64()),
    ]
)
"""`CheckedRecords.accepted`: the stored columns, the product attributes events may carry, ``_row``."""

# what the shortcut is certain DuckDB reads as it does (anything else goes to the SQL):
# ISO 8601 to the microsecond with Z or a +hh:mm offset (DuckDB's TIMESTAMPTZ cast, Python's fromisoformat) ...
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?", re.ASCII)
# ... plain decimals in ASCII digits (both parse to the nearest double; Python's float() also
# reads other scripts' digits, and long exponents may underflow differently) ...
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d{1,2})?", re.ASCII)
# ... and JSON without escaped surrogates (Python's reader takes a lone one, DuckDB's refuses it)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_EARLIEST: Final = datetime.fromisoformat(EARLIEST_TIME)
_TYPES: Final = frozenset(EVENT_TYPES)
_PRODUCT_TYPES: Final = frozenset(PRODUCT_EVENT_TYPES)
_MAX_QUANTITY: Final = 2147483647


class _Unsure(Exception):
    """A value the shortcut cannot type with certainty: the SQL checks the batch."""


def _refuse_constant(token: str) -> None:
    raise _Unsure(token)


def _number(value: Any) -> float | None:
    """A price or quantity as DuckDB's ``try_cast(text AS DOUBLE)`` reads its text (`records_table`)."""
    kind = type(value)
    if value is None:
        return None
    if kind is float:  # its text is repr(), which reads back as the same double
        return float(value)
    if kind is int:  # not bool, whose text "true" no number parser takes
        try:
            return float(value)
        except OverflowError:
            raise _Unsure from None
    if kind is str and _NUMBER.fullmatch(value):
        return float(value)
    raise _Unsure


_INSTANTS: dict[str, datetime] = {}
"""Times already typed, by their text: the events of a group mostly share a few spellings (those
sent within one second), and a look-up costs a fraction of the pattern match and parse."""
_INSTANTS_HELD: Final = 4_096


def _instant(value: Any) -> datetime:
    """The time as the importers store it: naive UTC (a time without an offset is UTC)."""
    if type(value) is not str:
        raise _Unsure
    ts = _INSTANTS.get(value)
    if ts is not None:
        return ts
    if not _TIME.fullmatch(value):
        raise _Unsure
    try:
        if value[-1] == "Z":  # the common spelling: UTC already, nothing to shift
            ts = datetime.fromisoformat(value[:-1])
        else:
            ts = datetime.fromisoformat(value)
            offset = ts.utcoffset()
            if offset is not None:
                ts = (ts - offset).replace(tzinfo=None)
    except (ValueError, OverflowError):  # a date that does not exist, hour 24, second 60
        raise _Unsure from None
    if len(_INSTANTS) >= _INSTANTS_HELD:
        _INSTANTS.clear()
    _INSTANTS[value] = ts
    return ts


def _trim(text: str) -> str:
    """``text`` without its edge spaces, as the SQL's ``trim``; `_Unsure` when a non-ASCII character
    is left at an edge: DuckDB's ``trim`` also removes Unicode spaces (U+00A0, U+3000, ...)."""
    out = text.strip(" ")
    if out and not text.isascii() and not (out[0].isascii() and out[-1].isascii()):
        raise _Unsure
    return out


def _typed_row(record: Mapping[str, Any], future: datetime) -> tuple[Any, ...]:
    """The row `_typed_sql` makes of a record it accepts (`STORED_COLUMNS` order), else `_Unsure`.

    Each step mirrors the SQL's canonical column or reason it names; see `_checked_sql`. It runs
    for every posted event on the writer thread, holding the GIL the event loop needs: so the
    fields are read one by one, and `_trim` settles an ASCII text by a flag check.
    """
    get = record.get
    texts = (
        event_id := get("event_id"),
        user := get("user_id"),
        session := get("session_id"),
        kind := get("event_type"),
        product := get("product_id"),
        order := get("order_id"),
        channel := get("channel"),
        device := get("device"),
        properties := get("properties"),
    )
    for v in texts:  # 'NUL byte in text'; other types are spelled by `records_table`
        if v is not None and (type(v) is not str or "\x00" in v):
            raise _Unsure
    if event_id is not None:  # CARTLIFT.select: trimmed; 'blank event id'
        event_id = _trim(event_id)
        if not event_id:
            raise _Unsure
    ts = _instant(get("ts"))  # 'unparseable time'
    if not _EARLIEST <= ts <= future:  # 'time before 1970', 'time in the future'
        raise _Unsure
    if user is None or not _trim(user):  # 'missing user'
        raise _Unsure  # (stored as given)
    if kind is None or not kind.isascii():  # lower(trim(event_type)): ASCII lowers alike
        raise _Unsure
    kind = kind.strip(" ").lower()
    if kind not in _TYPES:  # UNKNOWN_EVENT_TYPE
        raise _Unsure
    if product is not None:
        product = _trim(product) or None
    if product is None and kind in _PRODUCT_TYPES:  # 'missing product'
        raise _Unsure
    if session is not None:
        session = _trim(session) or None
    if session is None:  # sessions are cut by the SQL
        raise _Unsure
    price = get("price")
    if type(price) is not float:  # a float's text is repr(), which reads back as the same double
        price = _number(price)  # booleans, 'unparseable price'
    if price is not None and not 0 <= price <= MAX_PRICE:  # NaN, inf, negative, too high
        raise _Unsure
    q = _number(get("quantity"))
    if q is None:
        quantity = 1
    elif 0 < q <= _MAX_QUANTITY and q == math.floor(q):
        quantity = int(q)
    else:
        raise _Unsure  # 'quantity must be a positive whole number'
    if properties:  # json_valid and no NaN or Infinity
        if _SURROGATE_ESCAPE.search(properties):
            raise _Unsure
        try:
            json.loads(properties, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise _Unsure from None
    order, channel, device, properties = order or None, channel or None, device or None, properties or None
    if event_id is None:  # DERIVED_ID_SQL
        key = "\x1f".join(
            (
                ts.isoformat(timespec="microseconds"),
                user,
                session,
                kind,
                product or "",
                str(quantity),
                "" if price is None else repr(price),
                order or "",
            )
        )
        try:
            event_id = hashlib.md5(key.encode()).hexdigest()
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 text, let the SQL path say so
            raise _Unsure from None
    return (event_id, ts, user, session, kind, product, quantity, price, order, channel, device, properties)


def typed_rows(
    records: Sequence[Mapping[str, Any]], *, now: datetime | None = None
) -> list[tuple[Any, ...]] | None:
    """The row the importers' SQL makes of each record (`STORED_COLUMNS` order), or None when unsure of one.

    The first half of `accept_typed`, record by record; `accept_rows` is the second (duplicates
    and conflicts of a whole group of batches at once).
    """
    now = now or datetime.now(UTC)
    # the SQL compares with the clock's next day to the second (`_checked_sql`)
    future = (now + timedelta(days=1)).replace(microsecond=0, tzinfo=None)
    try:
        return [_typed_row(record, future) for record in records]
    except _Unsure:
        return None


def accept_rows(rows: Sequence[tuple[Any, ...]]) -> CheckedRecords | None:
    """`CheckedRecords` of typed rows (`typed_rows`, one per record in order), or None on a conflict.

    A later row with an id met earlier and the same content is a duplicate (a retry); with other
    content it is a conflict, which only the SQL can quarantine (with its raw record): None.
    """
    if not rows:
        return None  # no records: the SQL path says which columns are missing
    repeated: list[tuple[int, str]] = []
    if len({r[0] for r in rows}) == len(rows):  # every id once (the usual group): all kept, in order
        kept = list(rows)
        numbers: Sequence[int] = range(1, len(rows) + 1)
    else:
        kept, picked = [], []
        first: dict[str, tuple[Any, ...]] = {}
        for n, row in enumerate(rows, 1):
            content = row[1:]
            earlier = first.setdefault(row[0], content)
            if earlier is content:
                kept.append(row)
                picked.append(n)
            elif earlier == content:  # the SQL compares a hash of these values: a retry
                repeated.append((n, row[0]))
            else:  # a conflict: the SQL quarantines it with its raw record
                return None
        numbers = picked
    n = len(kept)
    columns = list(zip(*kept, strict=True))
    arrays = [pa.array(c, t) for c, t in zip(columns, ACCEPTED_SCHEMA.types[:12], strict=True)]
    arrays += [pa.nulls(n, pa.string())] * 3 + [pa.array(numbers, pa.int64())]
    table = pa.Table.from_arrays(arrays, schema=ACCEPTED_SCHEMA)
    return CheckedRecords(table, repeated, [], rows=kept)


def accept_typed(
    records: Sequence[Mapping[str, Any]], *, now: datetime | None = None
) -> CheckedRecords | None:
    """`check_records` of records given in Python, or None where only the importers' SQL can say.

    A shortcut that accepts or gives up: it returns the rows the SQL would accept (same values,
    same ids, the same duplicates within the batch) when it is certain of every record, and None
    as soon as one record might be refused, lacks a session or conflicts with an earlier one.

    Parameters
    ----------
    records : sequence of mappings
        Records of cartlift's schema (values as `records_table` reads them).
    now : datetime, optional
        The check's clock; default now.
    """
    rows = typed_rows(records, now=now)
    return None if rows is None else accept_rows(rows)


def records_table(records: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]]) -> pa.Table:
    """Records as an Arrow table; Python records become text columns (the importers parse text)."""
    if isinstance(records, pa.Table):
        return records
    if isinstance(records, pd.DataFrame):
        return pa.Table.from_pandas(records, preserve_index=False)
    rows = list(records)
    if not rows:
        raise DataError("No records given: pass at least one row.")
    columns = sorted({k for r in rows for k in r})
    # most values are text or missing already: only the others go through `_text`
    return pa.table(
        {
            c: pa.array(
                [v if v is None or type(v) is str else _text(v) for v in (r.get(c) for r in rows)],
                pa.string(),
            )
            for c in columns
        }
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):  # as JSON spells it, which no number parser takes
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
