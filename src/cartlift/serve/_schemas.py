"""Request (``*Create``) and response (``*Public``) schemas, one set per resource.

Incoming events are checked here only for their *shape* (a JSON object with these fields, of
these JSON types); their *content* (a parseable time, a known event type, a positive quantity ...)
is checked by the events package with the importers' rules, which answer per event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

__all__ = [
    "AssignmentPublic",
    "CartRecommendationCreate",
    "ErasurePublic",
    "ErrorPublic",
    "EventBatchCreate",
    "EventBatchPublic",
    "EventCreate",
    "EventErrorPublic",
    "HealthPublic",
    "ItemScorePublic",
    "KeyCreate",
    "KeyInfo",
    "KeyList",
    "KeyPublic",
    "KeyRevoked",
    "ReadyPublic",
    "RecommendationsPublic",
    "ReloadPublic",
    "RiskPublic",
]

Text = str
# strict: pydantic would turn true into 1.0; a boolean stays one, and the events package refuses
# it per event ("unparseable price"), as it refuses `true` in a file
Number = StrictInt | StrictFloat | StrictStr | StrictBool


class EventCreate(BaseModel):
    """One event, in cartlift's own schema (the ``cartlift`` import format)."""

    model_config = ConfigDict(extra="forbid")

    event_id: Text | None = Field(
        default=None,
        max_length=200,
        description="Unique id; a retried event must keep it (derived from content when absent).",
    )
    ts: Text = Field(
        max_length=64, description="ISO 8601 time, e.g. 2026-11-01T10:00:00Z (UTC when no offset)."
    )
    user_id: Text | None = Field(
        max_length=200, description="The customer (pseudonymised before storage when configured)."
    )
    session_id: Text | None = Field(
        default=None, max_length=200, description="Session; cut by a 30-minute gap when absent."
    )
    event_type: Text = Field(
        max_length=32, description="view, cart_add, cart_remove, checkout, purchase or return."
    )
    product_id: Text | None = Field(default=None, max_length=200)
    quantity: Number | None = Field(default=None, description="A positive whole number (default 1).")
    price: Number | None = Field(default=None, description="Unit price, >= 0.")
    order_id: Text | None = Field(default=None, max_length=200)
    channel: Text | None = Field(default=None, max_length=100)
    device: Text | None = Field(default=None, max_length=100)
    properties: dict[str, Any] | None = Field(default=None, description="Anything else, kept as JSON.")


class EventBatchCreate(BaseModel):
    """A batch of events (at most `max_batch_events`, 1,000 by default)."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventCreate] = Field(min_length=1, description="The events, oldest first.")


class EventErrorPublic(BaseModel):
    """Why one event of a batch was rejected (it is kept in the quarantine with this reason)."""

    index: int = Field(description="Position of the event in the batch (0-based).")
    event_id: str | None
    reason: str


class EventBatchPublic(BaseModel):
    """What became of a batch: every event is accepted, a duplicate, or rejected with a reason."""

    accepted: int
    duplicates: int
    rejected: int
    errors: list[EventErrorPublic]
    duplicate_ids: list[str]


class ItemScorePublic(BaseModel):
    """One recommended item; ``score`` is comparable within one list only (None for fallbacks)."""

    item_id: str
    score: float | None


class RecommendationsPublic(BaseModel):
    """A list of recommended items and which models made it."""

    items: list[ItemScorePublic]
    sources: list[str] = Field(
        default_factory=list, description="recommender, popularity or store-popularity."
    )
    models: dict[str, str] = Field(default_factory=dict, description="Kind -> model version used.")
    user_id: str | None = None
    item_id: str | None = None
    cart: list[str] | None = None


class CartRecommendationCreate(BaseModel):
    """The items in a cart (or viewed in a session), oldest first."""

    model_config = ConfigDict(extra="forbid")

    items: list[Text] = Field(min_length=1, max_length=200)
    k: int = Field(default=10, ge=1, le=100, strict=True)  # `true` is not a number of items
    user_id: Text | None = Field(
        default=None, max_length=200, description="Who is shown the list (for the impression log)."
    )
    session_id: Text | None = Field(
        default=None, max_length=200, description="The session or cart it is shown in."
    )


class RiskPublic(BaseModel):
    """A live cart and its probability of being abandoned."""

    session_id: str | None
    events: int
    cart_open: bool
    cart_value: float | None
    cart_items: float | None
    p_abandon: float | None
    model_version: str | None
    note: str | None = None


class AssignmentPublic(BaseModel):
    """A unit's variant in an experiment."""

    experiment: str
    unit: str
    variant: str | None
    status: Literal["assigned", "holdout", "not_targeted", "not_covered"]
    bucket: float
    salt: str
    logged: bool


class ReloadPublic(BaseModel):
    """The model versions served after a reload, and the kinds that failed to load."""

    models: dict[str, dict[str, Any]]
    errors: dict[str, str]


class ErasurePublic(BaseModel):
    """What was erased for a user (an audit record keeps the counts, not the id)."""

    user_id: str
    erased: dict[str, int]


class KeyCreate(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["ingest", "read", "admin", "track"]
    rate_limit: float | None = Field(
        default=None, gt=0, strict=True, description="Requests per second (default: the service's)."
    )
    label: str | None = Field(default=None, max_length=200)
    expires_in_days: float | None = Field(
        default=None,
        gt=0,
        strict=True,
        le=36_500,
        description="The key stops working this many days from now.",
    )
    origins: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Page origins a track key may be used from (required for scope track).",
    )


class KeyPublic(BaseModel):
    """A created key: the secret is shown this once; only its hash is stored."""

    key: str
    key_id: str
    scope: str
    rate_limit: float | None
    expires_at: datetime | None = None


class KeyInfo(BaseModel):
    """A stored key as listed (never its secret or hash)."""

    key_id: str
    scope: str
    label: str | None
    rate_limit: float | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


class KeyList(BaseModel):
    """Every key of the store, newest first."""

    keys: list[KeyInfo]


class KeyRevoked(BaseModel):
    """How many keys a revocation stopped."""

    key_id: str
    revoked: int


class HealthPublic(BaseModel):
    """Liveness."""

    status: Literal["ok"]


class ReadyPublic(BaseModel):
    """Readiness: the store answers and the writer runs."""

    ready: bool
    checks: dict[str, bool]
    backlog: int
    models: dict[str, dict[str, Any]]


class _ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorPublic(BaseModel):
    """Every error: ``{"error": {"status", "code", "message", "details"?}}``."""

    error: _ErrorDetail
