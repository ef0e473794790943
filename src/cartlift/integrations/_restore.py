"""Signed cart-restore tokens: a recovery message's link names a cart nobody can forge or extend.

A token is ``base64url(cart_id) "." expiry "." base64url(HMAC-SHA256(secret, cart_id "." expiry))``.
The storefront's landing URL carries it as ``?cl_restore=TOKEN``; the tracker sends it to
``GET /v1/track/restore``, which checks it and answers the cart's lines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cartlift.errors import InvalidParameterError

__all__ = ["RESTORE_PARAMETER", "restore_link", "sign_restore", "verify_restore"]

RESTORE_PARAMETER = "cl_restore"
"""The query parameter of the landing URL that carries the token."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, message: str) -> str:
    return _b64(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest())


def sign_restore(cart_id: str, secret: str, *, expires: datetime) -> str:
    """A token for ``cart_id`` valid until ``expires`` (naive UTC or aware)."""
    if not secret:
        raise InvalidParameterError("A restore link needs a secret: set CARTLIFT_SERVE_RESTORE_SECRET.")
    moment = expires.astimezone(UTC) if expires.tzinfo else expires.replace(tzinfo=UTC)
    payload = f"{_b64(cart_id.encode())}.{int(moment.timestamp())}"
    return f"{payload}.{_mac(secret, payload)}"


def verify_restore(token: str, secret: str, *, now: datetime | None = None) -> str | None:
    """The cart id of a valid, unexpired token, else None (forged, altered, expired or garbled)."""
    parts = token.split(".")
    if len(parts) != 3 or not secret:
        return None
    encoded, expiry, mac = parts
    if not hmac.compare_digest(_mac(secret, f"{encoded}.{expiry}"), mac):
        return None
    moment = now or datetime.now(UTC)
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        if int(expiry) < moment.timestamp():
            return None
        return _unb64(encoded).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def restore_link(url: str, cart_id: str, secret: str, *, days: float = 7.0) -> str:
    """``url`` with the signed token of ``cart_id`` (valid ``days``) in its ``cl_restore`` parameter."""
    token = sign_restore(cart_id, secret, expires=datetime.now(UTC) + timedelta(days=days))
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != RESTORE_PARAMETER]
    query.append((RESTORE_PARAMETER, token))
    return urlunsplit(parts._replace(query=urlencode(query)))
