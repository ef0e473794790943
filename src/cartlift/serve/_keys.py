"""API keys: random secrets shown once, stored as a SHA-256 hash, each with one scope.

A key is 32 random bytes (``cl_`` + URL-safe base64), so a fast hash is enough: unlike a password
it cannot be guessed from a dictionary (the reasoning behind GitHub's token storage). The first
characters after ``cl_`` form a short public id for logs and audit records.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cartlift.errors import InvalidParameterError
from cartlift.store import StoreURL, audit_subject, now_utc, open_storage

__all__ = [
    "SCOPES",
    "ApiKey",
    "allows",
    "audit_subject",
    "check_origin",
    "create_key_in_store",
    "hash_key",
    "new_key",
    "pseudonymise",
    "track_origins",
]

SCOPES: Final = ("ingest", "read", "admin", "track")
"""``ingest`` posts events; ``read`` asks for recommendations, risk, decisions, assignments;
``admin`` does everything (results, reload, erasure, keys, dashboard); ``track`` is a publishable
key of the storefront tracker: it may only post events (and restore a cart) from its origins."""

PREFIX: Final = "cl_"


@dataclass(frozen=True)
class ApiKey:
    """A stored key: its public id, scope, optional own rate limit, and when it was made."""

    key_id: str
    scope: str
    rate_limit: float | None
    created_at: datetime
    label: str | None = None
    expires_at: datetime | None = None
    origins: tuple[str, ...] = ()
    """The page origins a ``track`` key may be used from (``https://shop.example``)."""

    def expired(self) -> bool:
        """True when the key has an expiry and it has passed; the clock is read only for such a key
        (every request asks, and most keys never expire)."""
        return self.expires_at is not None and now_utc() >= self.expires_at


def new_key() -> tuple[str, str, str]:
    """A new secret key, its public id and its hash: ``(key, key_id, key_hash)``.

    The id never begins with ``-``: one id in 64 would, and a command line reads ``cartlift keys
    revoke -zA0RoxO`` as an option.
    """
    key = PREFIX + secrets.token_urlsafe(32)
    while key[len(PREFIX)] == "-":
        key = PREFIX + secrets.token_urlsafe(32)
    return key, key[len(PREFIX) : len(PREFIX) + 8], hash_key(key)


def hash_key(key: str) -> str:
    """The stored form of a key (hex SHA-256)."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_scope(scope: str) -> str:
    """``scope`` if it is one of `SCOPES`, else a clear error."""
    if scope not in SCOPES:
        raise InvalidParameterError(f"The scope must be one of {', '.join(SCOPES)}. Got {scope!r} instead.")
    return scope


def check_origin(origin: str) -> str:
    """``origin`` as browsers send it in ``Origin`` (scheme://host[:port], no path), else a clear error."""
    from urllib.parse import urlsplit

    parts = urlsplit(origin.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
    ):
        raise InvalidParameterError(
            f"An origin is scheme://host[:port], as a browser sends it, e.g. https://shop.example. Got {origin!r} instead."
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def track_origins(scope: str, origins: Sequence[str]) -> tuple[str, ...]:
    """The checked origins of a new key: a ``track`` key needs at least one, other scopes take none."""
    if scope != "track":
        if origins:
            raise InvalidParameterError(f"Only track keys take origins; a {scope} key is used from servers.")
        return ()
    if not origins:
        raise InvalidParameterError(
            "A track key needs the origin(s) of the shop's pages: --origin https://shop.example (repeatable)."
        )
    return tuple(dict.fromkeys(check_origin(o) for o in origins))


def allows(granted: str, needed: str) -> bool:
    """True when a key of scope ``granted`` may call a route that needs ``needed`` (admin may all)."""
    return granted == needed or granted == "admin"


def pseudonymise(user_id: str, secret: str | None) -> str:
    """The stored form of a user id: a keyed hash (HMAC-SHA256) when a secret is configured.

    The same id always maps to the same pseudonym, so histories, recommendations and erasure keep
    working; without the secret the pseudonym cannot be linked back to the id.
    """
    if not secret:
        return user_id
    digest = hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return "p_" + digest[:40]


def create_key_in_store(
    db: str | StoreURL,
    *,
    scope: str,
    rate_limit: float | None = None,
    label: str | None = None,
    expires_at: datetime | None = None,
    origins: Sequence[str] = (),
) -> tuple[str, str]:
    """Create an API key directly in the store (no service running): ``(key, key_id)``.

    A DuckDB file in use by a running service is locked; create keys there with
    ``POST /v1/admin/keys`` instead.
    """
    key, key_id, key_hash = new_key()
    storage = open_storage(db)
    storage.run_now(
        lambda ctx: storage.insert_key(
            ctx,
            key_hash=key_hash,
            key_id=key_id,
            scope=scope,
            rate_limit=rate_limit,
            label=label,
            expires_at=expires_at,
            origins=track_origins(scope, origins),
        )
    )
    return key, key_id
