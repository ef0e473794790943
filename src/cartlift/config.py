"""Settings: one place for paths and defaults, read from ``CARTLIFT_*`` environment variables."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DB_FIELD", "Settings", "get_settings"]

DB_FIELD = Field(
    default="cartlift.duckdb",
    validation_alias=AliasChoices("CARTLIFT_DB", "CARTLIFT_SERVE_DB"),
    description="The store: a DuckDB file, or a postgresql:// URL (add ?schema=NAME for a schema). "
    "CARTLIFT_SERVE_DB is accepted as an alias of CARTLIFT_DB.",
)
"""The one setting that names the store, shared by the CLI's and the service's settings."""


class Settings(BaseSettings):
    """cartlift settings; each field can be set by ``CARTLIFT_<NAME>`` (e.g. ``CARTLIFT_DB``)."""

    model_config = SettingsConfigDict(env_prefix="CARTLIFT_", extra="ignore", populate_by_name=True)

    db: str = DB_FIELD
    memory_limit: str = Field(
        default="1GB", description="DuckDB's memory limit; larger work spills to disk instead."
    )
    threads: int | None = Field(default=None, ge=1, description="DuckDB threads (default: all cores).")
    session_gap_minutes: float = Field(
        default=30.0, gt=0, description="Inactivity gap that starts a new session when a source has none."
    )
    batch_rows: int = Field(default=50_000, ge=1, description="Rows per batch for sources read in Python.")
    currency: str = Field(
        default="USD",
        pattern=r"^[A-Z]{3}$",
        description="The store's currency (ISO 4217 code, e.g. EUR): every amount of money is shown in it.",
    )
    attribution_click_hours: float = Field(
        default=168.0,
        gt=0,
        description="A purchase this many hours or less after a click on a message is credited to it (click-through).",
    )
    attribution_view_hours: float = Field(
        default=24.0,
        ge=0,
        description="A purchase this many hours or less after a message was sent, without a click, is credited "
        "to it (view-through; 0 turns view-through off).",
    )
    attribution_rec_hours: float = Field(
        default=24.0,
        gt=0,
        description="A purchase of a recommended product this many hours or less after a list showed it to "
        "the customer is credited to that recommendation.",
    )


def get_settings() -> Settings:
    """Read the settings from the environment now (not cached: tests and the CLI change it)."""
    return Settings()
