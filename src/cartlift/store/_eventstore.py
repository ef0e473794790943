"""The event store: one embedded DuckDB file with the data model of DESIGN.md.

`EventStore` is the interface every package reads and writes data through (analytics,
recommend, predict, act, experiments, report). A PostgreSQL store is reached through the same
interface as a working copy (`cartlift.store.open_store`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from cartlift.config import get_settings
from cartlift.errors import CartliftError, DataError, StoreError, UnknownTableError
from cartlift.events import EVENT_TYPES
from cartlift.events._check import records_table
from cartlift.events._formats import CARTLIFT, PRODUCTS, detect_format, get_format, read_header
from cartlift.events._ingest import LoadResult, ProgressCallback, load
from cartlift.events._mapping import ColumnMapping
from cartlift.events._products import load_products
from cartlift.events._snapshot import snapshot
from cartlift.store._tables import CORE_TABLES, table_ddl
from cartlift.store._url import StoreURL, parse_store_url

__all__ = ["EventStore"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_table_name(name: str) -> str:
    """A table name safe to put in SQL (letters, digits, underscore)."""
    if not _NAME.match(name):
        raise DataError(f"Invalid table name {name!r}: use letters, digits and underscores.")
    return name


class EventStore:
    """The store of events, products, quarantined rows and every derived table.

    Parameters
    ----------
    path : str or Path, optional
        The DuckDB file; default ``CARTLIFT_DB`` or ``cartlift.duckdb``. ``":memory:"`` for a
        throw-away store. A PostgreSQL URL is refused here (open it with `open_store`).
    read_only : bool
        Open without the write lock, so several readers can share the file.
    memory_limit : str, optional
        DuckDB's memory limit (default ``CARTLIFT_MEMORY_LIMIT``, 1GB): larger work spills to disk,
        which keeps ingestion of files larger than RAM bounded.

    Examples
    --------
    >>> with EventStore(":memory:") as store:
    ...     store.count("events")
    0
    """

    def __init__(
        self,
        path: str | Path | StoreURL | None = None,
        *,
        read_only: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> None:
        settings = get_settings()
        self.path = parse_store_url(path).duckdb_path()
        self.read_only = read_only
        self._settings = settings
        if not read_only and str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as e:
            raise StoreError(f"Cannot open the store {str(self.path)!r}: {e}") from e
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"SET memory_limit = '{memory_limit or settings.memory_limit}'")
        if threads or settings.threads:
            self.con.execute(f"SET threads = {int(threads or settings.threads or 1)}")
        # DuckDB's own estimate feeds our progress bars; it must never print by itself
        self.con.execute("SET enable_progress_bar = true")
        self.con.execute("SET enable_progress_bar_print = false")
        if not read_only:
            self.create_tables(CORE_TABLES)

    def create_tables(self, names: tuple[str, ...]) -> None:
        """Create the declared tables ``names`` (`cartlift.store.TABLES`) where they are missing."""
        if self.read_only:
            raise StoreError(
                f"The store {str(self.path)!r} is open read-only; open it writable to create {', '.join(names)}."
            )
        for sql in table_ddl(names):
            self.con.execute(sql)

    # -- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (the file stays)."""
        self.con.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- loading --------------------------------------------------------------------------------
    def ingest(
        self,
        path: str | Path,
        format: str = "auto",
        *,
        mapping: ColumnMapping | None = None,
        progress: ProgressCallback | None = None,
    ) -> LoadResult:
        """Load a file of events (or, with ``format="products"``, a catalog).

        Every row is accepted, counted as a duplicate (its event id is already stored) or
        quarantined with a reason. Nothing is written when the load fails. With ``mapping`` the
        file's own column and event names are read through it (``format`` is then ignored).
        """
        source = Path(path)
        fmt = get_format(format) if format != "auto" and mapping is None else None
        # every pass reads one stable, normalised copy (see events._snapshot)
        with snapshot(source) as copy:
            try:
                if mapping is not None:
                    fmt = mapping.to_format(read_header(copy))
                fmt = fmt or detect_format(copy)
                if fmt is PRODUCTS:
                    return load_products(self.con, path=copy, source=str(source))
                return load(
                    self.con,
                    fmt,
                    path=copy,
                    source=str(source),
                    gap_minutes=self._settings.session_gap_minutes,
                    batch_rows=self._settings.batch_rows,
                    progress=progress,
                )
            except CartliftError as e:  # messages name the user's file, not the private copy
                raise type(e)(str(e).replace(str(copy), str(source))) from e

    def ingest_records(
        self, records: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]], *, source: str = "python"
    ) -> LoadResult:
        """Load events given in Python, in cartlift's own schema, with the same validation as files."""
        table = records_table(records)
        return load(
            self.con, CARTLIFT, table=table, source=source, gap_minutes=self._settings.session_gap_minutes
        )

    def ingest_products(self, records: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]]) -> LoadResult:
        """Upsert catalog rows (``product_id, title, description, category, brand, price, cost``)."""
        return load_products(self.con, table=records_table(records))

    def write_table(self, name: str, data: pa.Table | pd.DataFrame, *, replace: bool = True) -> int:
        """Write a derived table (simulator truth, model outputs). The core tables are refused."""
        check_table_name(name)
        if name in CORE_TABLES:
            raise DataError(f"{name!r} is a core table; load it with ingest(), not write_table().")
        self.con.register("_incoming", data)
        try:
            verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
            self.con.execute(f"{verb} {name} AS SELECT * FROM _incoming WHERE false")
            return int(self.con.execute(f"INSERT INTO {name} SELECT * FROM _incoming").fetchall()[0][0])
        finally:
            self.con.unregister("_incoming")

    # -- reading --------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        """Names of the tables in the store."""
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
        ).fetchall()
        return [r[0] for r in rows]

    def _existing(self, table: str) -> str:
        check_table_name(table)
        if table not in self.tables():
            raise UnknownTableError(
                f"The store {str(self.path)!r} has no table {table!r}. Tables: {', '.join(self.tables())}."
            )
        return table

    def count(self, table: str) -> int:
        """Rows in ``table``."""
        return int(self.con.execute(f"SELECT count(*) FROM {self._existing(table)}").fetchall()[0][0])

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run SQL on the store and return a DataFrame."""
        return self.con.execute(sql, params or []).df()

    def arrow(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run SQL on the store and return an Arrow table."""
        # a relation streams into Arrow; a DB-API result would copy the rows once more
        return self.con.sql(sql, params=params or None).to_arrow_table()

    def quarantine(self, *, limit: int | None = None, reason: str | None = None) -> pd.DataFrame:
        """Rejected rows, newest load first, with source, record number, line, raw record and reason."""
        sql = "SELECT source, row_number, line, reason, raw, load_id, quarantined_at FROM quarantine"
        params: list[Any] = []
        if reason:
            sql += " WHERE reason = ?"
            params.append(reason)
        sql += " ORDER BY quarantined_at DESC, source, row_number"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.query(sql, params)

    def export(self, table: str, out: str | Path) -> int:
        """Write ``table`` to a Parquet file; returns the number of rows written."""
        name = self._existing(table)
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.con.execute(f"COPY {name} TO '{str(target).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")
        return self.count(name)

    def summary(self) -> dict[str, Any]:
        """Headline counts: events by type, users, sessions, products, quarantined rows, time span.

        Carts, abandonment, orders and revenue come from ``cartlift.analytics.store_summary``,
        where they are defined once for every view.
        """
        by_type = dict(self.con.execute("SELECT event_type, count(*) FROM events GROUP BY 1").fetchall())
        users, sessions, first, last = self.con.execute(
            "SELECT count(DISTINCT user_id), count(DISTINCT session_id), min(ts), max(ts) FROM events"
        ).fetchall()[0]
        return {
            "events": int(sum(by_type.values())),
            "events_by_type": {t: int(by_type.get(t, 0)) for t in EVENT_TYPES},
            "users": int(users),
            "sessions": int(sessions),
            "products": self.count("products"),
            "quarantined": self.count("quarantine"),
            "first_event": None if first is None else first.isoformat(),
            "last_event": None if last is None else last.isoformat(),
        }
