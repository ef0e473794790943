"""Source formats: how the raw columns of each file format map onto the `events` data model.

A format is declarative: its raw columns, how to read it, SQL expressions that build each
canonical column from the raw (all-text) columns, the mapping of its event names, and which
columns identify a row when the source has no event ids. `_ingest.py` runs every format through
the same validation, so the rules live in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cartlift.errors import FormatDetectionError, InvalidParameterError
from cartlift.events._schema import EVENT_COLUMNS

__all__ = ["FORMATS", "Format", "detect_format", "get_format", "quote_ident"]


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (column names in sources may hold spaces or odd characters)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Format:
    """How one source format maps onto the event model.

    Parameters
    ----------
    name : str
        The ``--format`` name.
    columns : tuple of str
        The raw columns, in file order (the header that ``auto`` detection matches).
    reader : str
        ``csv`` (DuckDB's streaming CSV reader), ``xlsx`` (openpyxl, streamed), ``parquet`` or
        ``jsonl``.
    select : dict
        Canonical column -> SQL expression over the raw columns (all text). Columns not given
        are NULL. ``ts`` must be a TIMESTAMP (NULL when unparseable); ``price`` and ``quantity``
        are the raw text, cast and checked by the shared validation.
    event_map : dict
        Raw event name -> canonical event type; names not in it are quarantined.
    sessionize : bool
        True when the source has no sessions: they are cut by an inactivity gap.
    pre_reason : str or None
        An SQL expression giving a format-specific rejection reason (or NULL).
    """

    name: str
    columns: tuple[str, ...]
    reader: str = "csv"
    delimiter: str = ","
    select: dict[str, str] = field(default_factory=dict)
    event_map: dict[str, str] = field(default_factory=dict)
    sessionize: bool = False
    pre_reason: str | None = None
    optional_columns: tuple[str, ...] = ()

    def event_type_sql(self, raw: str) -> str:
        """SQL that maps the raw event name onto a canonical type (unknown names pass through)."""
        if not self.event_map:
            return f"lower(trim({raw}))"
        cases = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in self.event_map.items())
        return f"CASE lower(trim({raw})) {cases} ELSE lower(trim({raw})) END"


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _q(name: str) -> str:
    return quote_ident(name)


def _epoch_or_iso(col: str) -> str:
    """Seconds since the epoch (as in session-rec's prepared files) or an ISO 8601 text."""
    c = _q(col)
    return (
        f"coalesce(to_timestamp(try_cast({c} AS DOUBLE))::TIMESTAMP,"
        f" try_cast(replace(replace({c}, 'T', ' '), 'Z', '') AS TIMESTAMP))"
    )


REES46 = Format(
    name="rees46",
    columns=(
        "event_time",
        "event_type",
        "product_id",
        "category_id",
        "category_code",
        "brand",
        "price",
        "user_id",
        "user_session",
    ),
    select={
        "ts": "try_strptime(event_time, '%Y-%m-%d %H:%M:%S UTC')",
        "user_id": "user_id",
        "session_id": "nullif(trim(user_session), '')",
        "event_type": "event_type",
        "product_id": "product_id",
        "price": "price",
        "category": "coalesce(nullif(category_code, ''), category_id)",
        "brand": "nullif(brand, '')",
    },
    event_map={"view": "view", "cart": "cart_add", "remove_from_cart": "cart_remove", "purchase": "purchase"},
)

RETAILROCKET = Format(
    name="retailrocket",
    columns=("timestamp", "visitorid", "event", "itemid", "transactionid"),
    select={
        "ts": 'make_timestamp(try_cast("timestamp" AS BIGINT) * 1000)',
        "user_id": "visitorid",
        "event_type": "event",
        "product_id": "itemid",
        "order_id": "nullif(transactionid, '')",
    },
    event_map={"view": "view", "addtocart": "cart_add", "transaction": "purchase"},
    sessionize=True,
)

YOOCHOOSE = Format(
    name="yoochoose",
    columns=("SessionId", "ItemId", "Time"),
    delimiter="\t",
    select={
        "ts": _epoch_or_iso("Time"),
        "user_id": '"SessionId"',  # anonymous sessions: the session is the only identity
        "session_id": "nullif(trim(\"SessionId\"), '')",
        "event_type": "'view'",
        "product_id": '"ItemId"',
    },
)

ONLINE_RETAIL = Format(
    name="online-retail",
    columns=(
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    ),
    reader="xlsx",
    select={
        "ts": (
            'coalesce(try_cast("InvoiceDate" AS TIMESTAMP), try_strptime("InvoiceDate", \'%m/%d/%Y %H:%M\'))'
        ),
        # xlsx stores ids as numbers ("17850.0"); a missing customer is an anonymous buyer of this invoice
        "user_id": (
            "coalesce(regexp_replace(nullif(trim(\"CustomerID\"), ''), '\\.0$', ''), 'anonymous:' || \"InvoiceNo\")"
        ),
        "session_id": "nullif(trim(\"InvoiceNo\"), '')",
        "order_id": '"InvoiceNo"',
        "event_type": "CASE WHEN starts_with(upper(\"InvoiceNo\"), 'C') THEN 'return' ELSE 'purchase' END",
        "product_id": "nullif(trim(\"StockCode\"), '')",
        # a cancellation line carries a negative quantity; the event type already says "return"
        "quantity": (
            "CASE WHEN starts_with(upper(\"InvoiceNo\"), 'C')"
            ' THEN ltrim("Quantity", \'-\') ELSE "Quantity" END'
        ),
        "price": '"UnitPrice"',
        "title": "nullif(trim(\"Description\"), '')",
        "properties": "json_object('country', \"Country\")",
    },
    pre_reason=(
        'CASE WHEN NOT starts_with(upper("InvoiceNo"), \'C\') AND try_cast("Quantity" AS DOUBLE) < 0'
        " THEN 'negative quantity outside a cancellation' END"
    ),
)

CARTLIFT_COLUMNS: Final = tuple(c for c in EVENT_COLUMNS if c != "load_id")
"""Our own file schema: the columns of `events` (the store adds `load_id`)."""

CARTLIFT = Format(
    name="cartlift",
    columns=CARTLIFT_COLUMNS,
    select={
        # a blank id is refused ("blank event id"), not replaced by a derived one
        "event_id": "CASE WHEN trim(event_id) = '' THEN event_id ELSE trim(event_id) END",
        "ts": (
            "coalesce(try_cast(ts AS TIMESTAMPTZ) AT TIME ZONE 'UTC',"
            " try_cast(replace(replace(ts, 'T', ' '), 'Z', '') AS TIMESTAMP))"
        ),
        "user_id": "user_id",
        "session_id": "nullif(trim(session_id), '')",
        "event_type": "event_type",
        "product_id": "product_id",
        "quantity": "quantity",
        "price": "price",
        "order_id": "nullif(order_id, '')",
        "channel": "nullif(channel, '')",
        "device": "nullif(device, '')",
        "properties": "nullif(properties, '')",
    },
    optional_columns=(
        "event_id",
        "session_id",
        "product_id",
        "quantity",
        "price",
        "order_id",
        "channel",
        "device",
        "properties",
    ),
)

FORMATS: Final[dict[str, Format]] = {
    f.name: f for f in (REES46, RETAILROCKET, YOOCHOOSE, ONLINE_RETAIL, CARTLIFT)
}


def get_format(name: str) -> Format:
    """The format called ``name``; a clear error lists the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join(["auto", *FORMATS])
        raise InvalidParameterError(f"Unknown format {name!r}. Use one of: {known}.") from None


def read_header(path: Path) -> list[str]:
    """The column names of a file: its header line, xlsx first row, parquet schema or first JSON object."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True)
        try:
            first = next(wb.active.iter_rows(max_row=1, values_only=True), ())
        finally:
            wb.close()
        return [str(c) for c in first if c is not None]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    line = _first_line(path)
    if line.startswith("{"):
        try:
            return list(json.loads(line))
        except json.JSONDecodeError:
            return []
    return [c.strip().strip('"') for c in line.split(_delimiter_of(line))]


def _first_line(path: Path) -> str:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as f:
        return f.readline().strip("\r\n\ufeff")


def _delimiter_of(header_line: str) -> str:
    return "\t" if "\t" in header_line else ";" if header_line.count(";") > header_line.count(",") else ","


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a delimited text file, from its header line (tab, semicolon or comma)."""
    return _delimiter_of(_first_line(path))


def detect_format(path: Path) -> Format:
    """Detect the format of ``path`` from its header (``--format auto``)."""
    header = read_header(path)
    names = {c.lower() for c in header}
    # the format whose required columns are all there and that explains the most columns wins;
    # extra columns (an exported `load_id`, a store's own additions) do not prevent a match
    candidates = [
        (len(names & {c.lower() for c in fmt.columns}), fmt)
        for fmt in FORMATS.values()
        if {c.lower() for c in fmt.columns if c not in fmt.optional_columns} <= names
    ]
    if candidates:
        return max(candidates, key=lambda pair: pair[0])[1]
    raise FormatDetectionError(
        f"Cannot detect the format of {str(path)!r} from its header {header[:12]!r}. "
        f"Pass --format with one of: {', '.join(FORMATS)}."
    )


PRODUCTS = Format(
    name="products",
    columns=("product_id", "title", "description", "category", "brand", "price", "cost"),
    optional_columns=("title", "description", "category", "brand", "price", "cost"),
)
"""A catalog file: one product a row. It fills `products`, not `events`."""

FORMATS["products"] = PRODUCTS
