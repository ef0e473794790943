"""Signed links in messages: restore the cart (counted as a click) and one-click unsubscribe.

A token is ``<message id>.<signature>`` with the signature an HMAC-SHA256 of the purpose and the
message id under the store's secret (`cartlift.deliver._repo.secret`), so nobody can forge a link
for another message or turn a restore link into an unsubscribe link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

__all__ = ["PURPOSES", "make_token", "read_token"]

PURPOSES: Final = ("restore", "unsubscribe")


def _signature(secret: bytes, purpose: str, message_id: str) -> str:
    mac = hmac.new(secret, f"{purpose}:{message_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode().rstrip("=")


def make_token(secret: bytes, purpose: str, message_id: str) -> str:
    """The token of a link of ``purpose`` in message ``message_id``."""
    return f"{message_id}.{_signature(secret, purpose, message_id)}"


def read_token(secret: bytes, purpose: str, token: str) -> str | None:
    """The message id of a valid token, or None (tampered, wrong purpose, malformed)."""
    message_id, _, sig = token.partition(".")
    if not message_id or not sig or len(token) > 200:
        return None
    return message_id if hmac.compare_digest(sig, _signature(secret, purpose, message_id)) else None
