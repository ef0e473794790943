"""Settings: one place for paths and defaults, read from ``CARTLIFT_*`` environment variables."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "store_identity"]


class Settings(BaseSettings):
    """cartlift settings; each field can be set by ``CARTLIFT_<NAME>`` (e.g. ``CARTLIFT_DB``)."""

    model_config = SettingsConfigDict(env_prefix="CARTLIFT_", extra="ignore")

    db: Path = Field(default=Path("cartlift.duckdb"), description="The DuckDB file of the event store.")
    memory_limit: str = Field(
        default="1GB", description="DuckDB's memory limit; larger work spills to disk instead."
    )
    threads: int | None = Field(default=None, ge=1, description="DuckDB threads (default: all cores).")
    session_gap_minutes: float = Field(
        default=30.0, gt=0, description="Inactivity gap that starts a new session when a source has none."
    )
    batch_rows: int = Field(default=50_000, ge=1, description="Rows per batch for sources read in Python.")


def get_settings() -> Settings:
    """Read the settings from the environment now (not cached: tests and the CLI change it)."""
    return Settings()


def store_identity(db: str | Path | None) -> str:
    """Which store ``db`` names, as models record it: the resolved DuckDB file, or for PostgreSQL
    ``postgresql://host:port/database?schema=NAME`` (without user or password).

    Models keep it so that a model trained on one store is never served for another.
    """
    text = str(db) if db is not None else str(get_settings().db)
    text = re.sub(r"^(postgres(?:ql)?):/+", r"postgresql://", text)  # a Path folds the URL's "//"
    if text.startswith("postgresql://"):
        parts = urlsplit(text)
        schema = dict(parse_qsl(parts.query)).get("schema", "public")
        return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}?schema={schema}"
    return str(Path(text).resolve())
