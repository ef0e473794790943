"""What every integration maps a payload onto: event records and identities.

An integration is a pure function ``payload -> Mapped``: event records in cartlift's own schema
(the body of ``POST /v1/events``, validated by the events package like every other way in) and
`Identity` records (a customer id, the anonymous id it joins, an e-mail and its marketing
consent). Nothing here touches a store; the service stores what the functions return.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cartlift.errors import PayloadError

__all__ = [
    "Identity",
    "Mapped",
    "as_number",
    "as_text",
    "iso_utc",
    "parse_time",
    "require_object",
    "stable_id",
]


@dataclass(frozen=True)
class Identity:
    """A customer as a source names them: the id, the anonymous id it joins, e-mail and consent."""

    user_id: str
    source: str
    ts: datetime
    anonymous_id: str | None = None
    email: str | None = None
    email_consent: bool | None = None
    consent_source: str | None = None
    consent_at: datetime | None = None

    @property
    def identity_id(self) -> str:
        """A stable id of the record's content, not its time: the same link or consent stated again is one row."""
        parts = [
            self.user_id,
            self.anonymous_id,
            self.email,
            self.email_consent,
            self.consent_source,
            self.consent_at,
            self.source,
        ]
        return stable_id("identity", *[None if p is None else str(p) for p in parts])


@dataclass
class Mapped:
    """What one payload maps onto.

    Attributes
    ----------
    events : list of dict
        Event records in cartlift's own schema (``POST /v1/events``), oldest first.
    identities : list of Identity
        Customers named by the payload.
    ignored : list of dict
        Messages that carry nothing cartlift stores, each ``{"index", "type", "reason"}``: they
        are answered, not silently dropped.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    identities: list[Identity] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)


def stable_id(*parts: str | None) -> str:
    """An id derived from ``parts`` (a retried payload yields the same id)."""
    blob = "\x1f".join("" if p is None else p for p in parts).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def as_text(value: Any) -> str | None:
    """A non-empty string of an id-like JSON value (numbers too: Shopify ids are integers)."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None


def as_number(value: Any) -> float | None:
    """A JSON number or numeric string (Shopify sends prices as strings), else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_time(value: Any, what: str) -> datetime:
    """An ISO 8601 time (any offset) as naive UTC; a clear `PayloadError` otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{what} must be an ISO 8601 time; got {value!r}.")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{what} must be an ISO 8601 time; got {value!r}.") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def iso_utc(moment: datetime) -> str:
    """Naive UTC as the ISO text the event schema reads."""
    return moment.isoformat(timespec="milliseconds") + "Z"


def require_object(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else a `PayloadError` naming ``what``."""
    if not isinstance(value, Mapping):
        raise PayloadError(f"{what} must be a JSON object; got {type(value).__name__}.")
    return value
