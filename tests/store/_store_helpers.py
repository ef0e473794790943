"""What the store's tests share."""

from __future__ import annotations

from typing import Any


def event(n: int, price: float | None = 9.5, **extra: Any) -> dict[str, Any]:
    """A view of product p1 by u1 in session s1, with event id ``e{n}``."""
    return {
        "event_id": f"e{n}",
        "ts": "2026-10-01T10:00:00Z",
        "user_id": "u1",
        "session_id": "s1",
        "event_type": "view",
        "product_id": "p1",
        "price": price,
        **extra,
    }
