"""The data model every part of cartlift shares (DESIGN.md): the core tables' columns with DuckDB types.

`events` holds what happened; `products` the catalog; `quarantine` every rejected row with its
reason; `loads` one line per ingest, so a store can always say where its rows came from.
The store package declares the tables from these columns (`cartlift.store.TABLES`).
"""

from __future__ import annotations

from typing import Final

EVENT_TYPES: Final = ("view", "cart_add", "cart_remove", "checkout", "purchase", "return")
"""Event types in funnel order (``return`` undoes a purchase)."""

PRODUCT_EVENT_TYPES: Final = ("view", "cart_add", "cart_remove", "purchase", "return")
"""Event types that are about one product, so a product id is required."""

EVENT_COLUMNS: Final[dict[str, str]] = {
    "event_id": "VARCHAR NOT NULL",
    "ts": "TIMESTAMP NOT NULL",  # UTC, no zone attached
    "user_id": "VARCHAR NOT NULL",
    "session_id": "VARCHAR NOT NULL",
    "event_type": "VARCHAR NOT NULL",
    "product_id": "VARCHAR",
    "quantity": "INTEGER NOT NULL",
    "price": "DOUBLE",
    "order_id": "VARCHAR",
    "channel": "VARCHAR",
    "device": "VARCHAR",
    "properties": "VARCHAR",  # a JSON object as text, for whatever else the source carries
    "load_id": "VARCHAR",
}

PRODUCT_COLUMNS: Final[dict[str, str]] = {
    "product_id": "VARCHAR PRIMARY KEY",
    "title": "VARCHAR",
    "description": "VARCHAR",
    "category": "VARCHAR",
    "brand": "VARCHAR",
    "price": "DOUBLE",
    "cost": "DOUBLE",
}

QUARANTINE_COLUMNS: Final[dict[str, str]] = {
    "quarantine_id": "VARCHAR NOT NULL",
    "load_id": "VARCHAR",
    "source": "VARCHAR NOT NULL",
    "row_number": "BIGINT",  # 1-based record number in the source, header excluded
    "line": "BIGINT",  # 1-based physical line in a text file (None for xlsx/parquet/API)
    "raw": "VARCHAR NOT NULL",  # the record as received: the line itself or a JSON object of its fields
    "reason": "VARCHAR NOT NULL",
    "quarantined_at": "TIMESTAMP NOT NULL",
}

LOAD_COLUMNS: Final[dict[str, str]] = {
    "load_id": "VARCHAR PRIMARY KEY",
    "source": "VARCHAR NOT NULL",
    "format": "VARCHAR NOT NULL",
    "started_at": "TIMESTAMP NOT NULL",
    "finished_at": "TIMESTAMP NOT NULL",
    "rows_read": "BIGINT NOT NULL",
    "accepted": "BIGINT NOT NULL",
    "duplicates": "BIGINT NOT NULL",
    "quarantined": "BIGINT NOT NULL",
}
