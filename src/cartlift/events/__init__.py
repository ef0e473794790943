"""Events: the data model, validation, the DuckDB event store and the importers."""

from cartlift.events._formats import CARTLIFT_COLUMNS, FORMATS, Format, detect_format, get_format
from cartlift.events._ingest import LoadResult
from cartlift.events._schema import (
    CORE_TABLES,
    EVENT_COLUMNS,
    EVENT_TYPES,
    PRODUCT_COLUMNS,
    PRODUCT_EVENT_TYPES,
)
from cartlift.events._snapshot import check_readable, snapshot
from cartlift.events._store import EventStore

__all__ = [
    "CARTLIFT_COLUMNS",
    "CORE_TABLES",
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "FORMATS",
    "PRODUCT_COLUMNS",
    "PRODUCT_EVENT_TYPES",
    "EventStore",
    "Format",
    "LoadResult",
    "check_readable",
    "detect_format",
    "get_format",
    "snapshot",
]
