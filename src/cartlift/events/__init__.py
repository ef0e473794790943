"""Events: the data model, validation and the importers (the store lives in `cartlift.store`)."""

from cartlift.events._check import (
    STORED_COLUMNS,
    CheckedRecords,
    accept_rows,
    accept_typed,
    check_records,
    quarantine_id,
    records_table,
    typed_rows,
)
from cartlift.events._formats import CARTLIFT_COLUMNS, FORMATS, Format, detect_format, get_format
from cartlift.events._ingest import (
    CONFLICT_REASON,
    DERIVED_ID_SQL,
    UNKNOWN_EVENT_TYPE,
    LoadResult,
    derive_event_ids,
)
from cartlift.events._mapping import MAPPABLE_COLUMNS, ColumnMapping, parse_pairs, read_mapping
from cartlift.events._schema import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    PRODUCT_COLUMNS,
    PRODUCT_EVENT_TYPES,
)
from cartlift.events._snapshot import check_readable, snapshot

__all__ = [
    "CARTLIFT_COLUMNS",
    "CONFLICT_REASON",
    "DERIVED_ID_SQL",
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "FORMATS",
    "MAPPABLE_COLUMNS",
    "PRODUCT_COLUMNS",
    "PRODUCT_EVENT_TYPES",
    "STORED_COLUMNS",
    "UNKNOWN_EVENT_TYPE",
    "CheckedRecords",
    "ColumnMapping",
    "Format",
    "LoadResult",
    "accept_rows",
    "accept_typed",
    "check_readable",
    "check_records",
    "derive_event_ids",
    "detect_format",
    "get_format",
    "parse_pairs",
    "quarantine_id",
    "read_mapping",
    "records_table",
    "snapshot",
    "typed_rows",
]
