"""Events: the data model, validation, the DuckDB event store and the importers."""

from cartlift.events._formats import CARTLIFT_COLUMNS, FORMATS, Format, detect_format, get_format
from cartlift.events._ingest import UNKNOWN_EVENT_TYPE, LoadResult
from cartlift.events._mapping import MAPPABLE_COLUMNS, ColumnMapping, parse_pairs, read_mapping
from cartlift.events._schema import (
    CORE_TABLES,
    EVENT_COLUMNS,
    EVENT_TYPES,
    PRODUCT_COLUMNS,
    PRODUCT_EVENT_TYPES,
)
from cartlift.events._store import EventStore

__all__ = [
    "CARTLIFT_COLUMNS",
    "CORE_TABLES",
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "FORMATS",
    "MAPPABLE_COLUMNS",
    "PRODUCT_COLUMNS",
    "PRODUCT_EVENT_TYPES",
    "UNKNOWN_EVENT_TYPE",
    "ColumnMapping",
    "EventStore",
    "Format",
    "LoadResult",
    "detect_format",
    "get_format",
    "parse_pairs",
    "read_mapping",
]
