"""Request limits: body size (pure ASGI, before the body is read) and per-key rate limits."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cartlift.serve._errors import error_body

__all__ = ["BodyLimitMiddleware", "MemoryRateLimiter", "RateLimiter", "RedisRateLimiter"]


class BodyLimitMiddleware:
    """Refuse bodies larger than ``max_bytes`` with 413, by header or while streaming.

    A declared ``Content-Length`` over the limit is refused before anything is read; a chunked
    body is counted as it arrives and refused as soon as it passes the limit, so an oversized
    batch is never parsed, let alone stored.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"The request body is larger than {self.max_bytes:,} bytes; send smaller batches."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = json.dumps(error_body(413, self._message())).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)


class RateLimiter:
    """Per-key limit: ``hit`` returns None when the request may go on, else seconds to wait."""

    def hit(self, key_id: str, rate: float, burst: float) -> float | None:
        """Take one request from the key's allowance."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class MemoryRateLimiter(RateLimiter):
    """A token bucket per key in this process: ``rate`` tokens a second, at most ``burst`` saved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def hit(self, key_id: str, rate: float, burst: float) -> float | None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return None
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate


class RedisRateLimiter(RateLimiter):
    """A one-second window counter per key in Redis, shared by every worker (``rate`` per second)."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix

    def hit(self, key_id: str, rate: float, burst: float) -> float | None:
        now = time.time()
        window = int(now)
        key = f"{self.prefix}:rate:{key_id}:{window}"
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 2)
        count = int(pipe.execute()[0])
        if count <= max(rate, 1.0):
            return None
        return max(0.001, window + 1 - now)

    def close(self) -> None:
        self.client.close()
