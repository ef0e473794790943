"""The store: opening it from one name, every table declared once, both backends, the single writer.

A store is named by one string (``--db`` / ``CARTLIFT_DB``): a DuckDB file or a
``postgresql://`` URL (`parse_store_url`). Packages read and write through `EventStore` (a
DuckDB connection with the data model; on PostgreSQL a working copy, `open_store`); the service
goes through `Storage` (`open_storage`: `DuckDBStorage` or `PostgresStorage`), whose jobs run on
one writer thread that commits concurrent event batches together. Every table is declared once
in `TABLES`, and both dialects' DDL is generated from the declaration.
"""

from cartlift.store._eventstore import EventStore
from cartlift.store._impressions import ImpressionLog, Shown, insert_impressions
from cartlift.store._open import open_storage, open_store
from cartlift.store._postgres import PostgresStorage, connect
from cartlift.store._slice import (
    clear,
    fill,
    fill_cart,
    fill_experiments,
    fill_outcomes,
    new_slice,
    write_back,
)
from cartlift.store._snapshot import SNAPSHOT_TABLES, snapshot_duckdb, snapshot_postgres
from cartlift.store._storage import (
    LIVE_COLUMNS,
    DuckDBStorage,
    IngestOutcome,
    KeyRecord,
    Storage,
    audit_subject,
    check_group,
    now_utc,
    split_outcomes,
    utc,
)
from cartlift.store._tables import (
    ATTRIBUTION_COLUMNS,
    CONSENT_COLUMNS,
    CONTACT_QUARANTINE_COLUMNS,
    CORE_TABLES,
    COUPON_COLUMNS,
    CUSTOMER_COLUMNS,
    DECISION_COLUMNS,
    DELIVER_KEY_COLUMNS,
    HOLDOUT_ASSIGNMENT_COLUMNS,
    HOLDOUT_PHASE_COLUMNS,
    IDENTITY_COLUMNS,
    IMPRESSION_COLUMNS,
    MESSAGE_COLUMNS,
    MESSAGE_EVENT_COLUMNS,
    MODEL_COLUMNS,
    MODEL_TABLE,
    PACKAGE_TABLES,
    REC_ATTRIBUTION_COLUMNS,
    TABLES,
    Table,
    table_ddl,
)
from cartlift.store._url import StoreURL, parse_store_url, store_identity
from cartlift.store._workcopy import postgres_store
from cartlift.store._writer import Records, Writer

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "CONSENT_COLUMNS",
    "CONTACT_QUARANTINE_COLUMNS",
    "CORE_TABLES",
    "COUPON_COLUMNS",
    "CUSTOMER_COLUMNS",
    "DECISION_COLUMNS",
    "DELIVER_KEY_COLUMNS",
    "HOLDOUT_ASSIGNMENT_COLUMNS",
    "HOLDOUT_PHASE_COLUMNS",
    "IDENTITY_COLUMNS",
    "IMPRESSION_COLUMNS",
    "LIVE_COLUMNS",
    "MESSAGE_COLUMNS",
    "MESSAGE_EVENT_COLUMNS",
    "MODEL_COLUMNS",
    "MODEL_TABLE",
    "PACKAGE_TABLES",
    "REC_ATTRIBUTION_COLUMNS",
    "SNAPSHOT_TABLES",
    "TABLES",
    "DuckDBStorage",
    "EventStore",
    "ImpressionLog",
    "IngestOutcome",
    "KeyRecord",
    "PostgresStorage",
    "Records",
    "Shown",
    "Storage",
    "StoreURL",
    "Table",
    "Writer",
    "audit_subject",
    "check_group",
    "clear",
    "connect",
    "fill",
    "fill_cart",
    "fill_experiments",
    "fill_outcomes",
    "insert_impressions",
    "new_slice",
    "now_utc",
    "open_storage",
    "open_store",
    "parse_store_url",
    "postgres_store",
    "snapshot_duckdb",
    "snapshot_postgres",
    "split_outcomes",
    "store_identity",
    "table_ddl",
    "utc",
    "write_back",
]
