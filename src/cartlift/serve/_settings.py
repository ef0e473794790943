"""The service's settings: one pydantic-settings class, read from ``CARTLIFT_SERVE_*``, failing fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, TypedDict

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cartlift.config import DB_FIELD
from cartlift.store import StoreURL, parse_store_url

__all__ = ["UVICORN_OPTIONS", "ServeSettings", "UvicornOptions"]


class ServeSettings(BaseSettings):
    """Settings of ``cartlift serve``; each field can be set by ``CARTLIFT_SERVE_<NAME>``.

    A wrong value stops the service at start with pydantic's message (fail fast), never at the
    first request.
    """

    model_config = SettingsConfigDict(env_prefix="CARTLIFT_SERVE_", extra="ignore", populate_by_name=True)

    # the same field as the CLI's settings: CARTLIFT_DB, with CARTLIFT_SERVE_DB as an alias
    db: str = DB_FIELD
    redis: str | None = Field(default=None, description="redis:// URL for shared live session state.")
    redis_prefix: str = Field(default="cartlift", description="Prefix of every Redis key the service writes.")
    model_dir: Path | None = Field(
        default=None, description="The model registry [default: models/ beside a DuckDB store]."
    )
    max_body_bytes: int = Field(default=2_000_000, ge=1_000, description="Largest request body accepted.")
    max_batch_events: int = Field(default=1_000, ge=1, le=100_000, description="Most events in one POST.")
    rate_limit: float = Field(
        default=200.0, gt=0, description="Requests per second per API key (a key may carry its own)."
    )
    rate_burst: float = Field(default=400.0, gt=0, description="Requests a key may send at once.")
    pseudonymise_key: SecretStr | None = Field(
        default=None,
        description="Secret of the keyed hash (HMAC-SHA256) that replaces user ids before storage.",
    )
    audit_key: SecretStr | None = Field(
        default=None,
        description="Secret of the keyed hash that names erased users in the audit log "
        "[default: the pseudonymisation secret, else a random one kept in audit.key in the model registry].",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS (comma separated); none by default."
    )
    writer_batch_events: int = Field(
        default=5_000, ge=1, description="Most events the single writer commits in one transaction."
    )
    live_sessions: int = Field(
        default=100_000, ge=10, description="Open sessions kept in memory (least recently used go first)."
    )
    session_ttl_seconds: int = Field(
        default=7_200, ge=60, description="Idle time after which a session is dropped."
    )
    shopify_secret: SecretStr | None = Field(
        default=None,
        description="The Shopify app's webhook secret: POST /v1/integrations/shopify checks X-Shopify-Hmac-Sha256 with it.",
    )
    restore_secret: SecretStr | None = Field(
        default=None,
        description="Key of the signed cart-restore links the tracker follows (`cartlift track restore-link`).",
    )
    log_impressions: bool = Field(
        default=True,
        description="Log every recommendation list answered in rec_impressions (attribution of recommendations reads it).",
    )
    intake_process: bool = Field(
        default=True,
        description="On a DuckDB store, answer POST /v1/events in a second process beside the one "
        "that owns the store (two cores instead of one GIL); without CORS origins only.",
    )
    recommender: str = Field(
        default="best",
        description="The model `train --all` fits for recommendations; best: the one that evaluates best on the store.",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @property
    def store(self) -> StoreURL:
        """The parsed store name."""
        return parse_store_url(self.db)

    def registry_dir(self) -> Path:
        """The model registry folder: ``models/<store name>/`` beside a DuckDB store (one per store).

        A registry made before registries were per store (``models/`` itself holding the kinds)
        is still used until the store's own folder exists; its versions are checked against
        the store all the same (`ModelRegistry.foreign`).
        """
        if self.model_dir is not None:
            return self.model_dir
        store = self.store
        if store.path is None:
            return Path("models")
        path = store.path.resolve()
        own, shared = path.parent / "models" / path.stem, path.parent / "models"
        legacy = not own.exists() and any((shared / kind).is_dir() for kind in ("recommender", "abandonment"))
        return shared if legacy else own


class UvicornOptions(TypedDict):
    """The uvicorn settings `cartlift serve` runs with (besides host, port, workers, log level)."""

    loop: str
    http: str
    access_log: bool
    timeout_graceful_shutdown: int


UVICORN_OPTIONS: Final[UvicornOptions] = {
    "loop": "auto",  # uvloop where installed (uvicorn[standard]), else asyncio
    "http": "auto",  # httptools where installed, else h11
    "access_log": False,
    "timeout_graceful_shutdown": 10,
}
"""``benchmarks/service.py`` runs its bare reference endpoint with these same settings, so the
ratio it prints compares the apps and nothing else."""
