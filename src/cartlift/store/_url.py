"""Which store a ``--db`` value or ``CARTLIFT_DB`` names: parsed here and nowhere else.

A store is named by one string: a DuckDB file path (``shop.duckdb``, ``:memory:``) or a
PostgreSQL URL (``postgresql://user@host:5432/db``, optionally ``?schema=NAME`` to keep the
store's tables in a schema of their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cartlift.config import get_settings
from cartlift.errors import StoreError

__all__ = ["StoreURL", "parse_store_url", "store_identity"]

_PG_SCHEMES: Final = ("postgresql", "postgres")
_SCHEMA: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class StoreURL:
    """A parsed store name.

    Attributes
    ----------
    url : str
        The name as given (what messages show; a PostgreSQL URL keeps its ``?schema=``).
    kind : {"duckdb", "postgres"}
    path : Path or None
        The DuckDB file (None for PostgreSQL).
    conninfo : str or None
        The URL libpq receives: the PostgreSQL URL without our ``schema`` parameter.
    schema : str or None
        The PostgreSQL schema of the store's tables (None: the connection's default).
    """

    url: str
    kind: Literal["duckdb", "postgres"]
    path: Path | None = None
    conninfo: str | None = None
    schema: str | None = None

    @property
    def is_postgres(self) -> bool:
        """True for a PostgreSQL store."""
        return self.kind == "postgres"

    @property
    def host(self) -> str | None:
        """The PostgreSQL host (for messages that must not show credentials)."""
        return urlsplit(self.conninfo).hostname if self.conninfo else None

    @property
    def identity(self) -> str:
        """Which store this is, as models record it: the resolved DuckDB file, or for PostgreSQL
        ``postgresql://host:port/database?schema=NAME`` (without user or password).

        Models keep it so that a model trained on one store is never served for another.
        """
        if self.path is not None:
            return str(self.path.resolve())
        parts = urlsplit(self.conninfo or "")
        return (
            f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}?schema={self.schema or 'public'}"
        )

    def duckdb_path(self) -> Path:
        """The DuckDB file, or a clear error for a PostgreSQL store."""
        if self.path is None:
            raise StoreError(f"This needs a DuckDB store file; the store is PostgreSQL at {self.host!r}.")
        return self.path


def parse_store_url(value: str | Path | StoreURL | None = None) -> StoreURL:
    """Parse a store name; None reads ``CARTLIFT_DB`` (alias ``CARTLIFT_SERVE_DB``), default ``cartlift.duckdb``.

    Raises
    ------
    StoreError
        For a PostgreSQL URL with an invalid ``schema`` or another URL scheme.
    """
    if isinstance(value, StoreURL):
        return value
    text = str(get_settings().db if value is None else value).strip()
    scheme = text.split(":", 1)[0].lower() if "://" in text else ""
    if not scheme or len(scheme) == 1:  # "C://..." is a Windows drive, not a scheme
        return StoreURL(url=text, kind="duckdb", path=Path(text))
    if scheme not in _PG_SCHEMES:
        raise StoreError(
            f"A store is a DuckDB file path or a postgresql:// URL. Got the scheme {scheme!r} in {text!r}."
        )
    parts = urlsplit(text)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not _SCHEMA.match(schema):
        raise StoreError(
            f"The schema in the store URL must be letters, digits and underscores. Got {schema!r}."
        )
    conninfo = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
    return StoreURL(url=text, kind="postgres", conninfo=conninfo, schema=schema)


def store_identity(db: str | Path | StoreURL | None) -> str:
    """`StoreURL.identity` of a store name (None: ``CARTLIFT_DB``)."""
    return parse_store_url(db).identity
