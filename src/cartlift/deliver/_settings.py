"""Delivery settings: one pydantic-settings class read from ``CARTLIFT_*``, failing fast on a bad value."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cartlift.config import Settings

__all__ = ["DeliverSettings"]


class DeliverSettings(BaseSettings):
    """How messages leave: each field can be set by ``CARTLIFT_<NAME>`` (``CARTLIFT_SMTP_URL`` ...).

    With no ``smtp_url`` e-mails are written as ``.eml`` files (and SMS as ``.txt``) into
    ``outbox_dir``; with ``webhook_url`` every message is posted there instead, signed.
    """

    model_config = SettingsConfigDict(env_prefix="CARTLIFT_", extra="ignore")

    smtp_url: SecretStr | None = Field(
        default=None,
        description="smtp://user:pass@host:587?starttls=true, or smtps://user:pass@host:465 (implicit TLS).",
    )
    sms_url: SecretStr | None = Field(
        default=None,
        description="twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com?from=+15005550006 (https; http:// only for 127.0.0.1).",
    )
    webhook_url: str | None = Field(default=None, description="POST every message here (JSON), signed.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="Key of the webhook's HMAC-SHA256 signature."
    )
    outbox_dir: Path | None = Field(
        default=None, description="Where .eml files go [default: outbox/ beside the store]."
    )
    mail_from: str = Field(default="Example Shop <shop@example.com>", description="The From of every e-mail.")
    # the store's own setting (CARTLIFT_CURRENCY, read by the report too), so mails and report agree
    currency: str = Field(
        default=Settings.model_fields["currency"].default,
        max_length=8,
        description="Written after every price in messages (the store's currency).",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Where `cartlift serve` is reached: links point here."
    )
    store_url: str = Field(
        default="https://shop.example.com/cart?restore={cart_id}",
        description="Where a restore link lands after the click is counted ({cart_id} is filled in).",
    )
    image_url: str | None = Field(default=None, description="Product image URL, {product_id} filled in.")
    templates: Path | None = Field(
        default=None, description="A folder of templates that replace the built-in ones."
    )
    quiet_hours: tuple[int, int] | None = Field(
        default=(21, 8),
        description="Local hours (start, end) in which nothing is sent, e.g. 21,8; empty: none.",
    )
    max_per_week: int | None = Field(default=3, ge=0, description="Messages per customer in any 7 days.")
    daily_budget: int | None = Field(default=None, ge=0, description="Messages sent per UTC day, store-wide.")
    max_attempts: int = Field(default=5, ge=1, description="Attempts before a message is dead.")
    backoff_seconds: float = Field(default=60.0, gt=0, description="First retry delay; doubles per attempt.")
    send_timeout: float = Field(default=20.0, gt=0, description="Seconds to wait for a provider's answer.")
    batch: int = Field(
        default=200,
        ge=1,
        description="Messages a worker claims at once; their new states are committed together, so a worker "
        "killed mid-batch sends at most this many again (same Message-ID).",
    )
    commit_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Commit the states of a batch's messages at least this often (bounds the crash window on a slow relay).",
    )
    lease_seconds: float = Field(
        default=300.0, gt=0, description="How long a claim holds before others may take it."
    )
    deliver_in_serve: bool = Field(default=True, description="Run the outbox worker inside `cartlift serve`.")
    worker_interval: float = Field(default=5.0, gt=0, description="Seconds between the worker's passes.")
    max_age_hours: float = Field(default=72.0, gt=0, description="Older decisions are not sent any more.")

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _hours(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p for p in value.replace("-", ",").split(",") if p.strip()]
            return tuple(int(p) for p in parts) if parts else None
        return value

    @field_validator("max_per_week", "daily_budget", "smtp_url", "sms_url", "webhook_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # CARTLIFT_MAX_PER_WEEK= (set but empty) means "no cap", as an empty quiet-hours setting means none
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("quiet_hours")
    @classmethod
    def _check_hours(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(0 <= h <= 23 for h in value):
            raise ValueError(f"quiet hours must be two hours in 0..23; got {value}")
        return value
