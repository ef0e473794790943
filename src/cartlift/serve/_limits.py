"""Request limits: body size (pure ASGI, before the body is read) and per-key rate limits."""

from __future__ import annotations

import threading
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cartlift.serve._errors import error_body

__all__ = ["BodyLimit", "BodyLimitMiddleware", "MemoryRateLimiter", "RateLimiter", "RedisRateLimiter"]


class BodyLimit:
    """The body-size rule: a declared ``Content-Length`` over ``max_bytes`` is refused before
    anything is read, and a chunked body is counted as it arrives and refused as soon as it passes
    the limit, so an oversized batch is never parsed, let alone stored.

    One rule for `BodyLimitMiddleware` and the event route's shortcut, which runs before the
    middleware (`cartlift.serve.routes.events`).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def message(self) -> str:
        """What a refused client reads."""
        return f"The request body is larger than {self.max_bytes:,} bytes; send smaller batches."

    def declared_too_large(self, scope: Scope) -> bool:
        """True when the request's ``Content-Length`` is over the limit."""
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                return value.isdigit() and int(value) > self.max_bytes
        return False

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 without reading the body (the bytes of the app's error handler for a 413)."""
        await JSONResponse(error_body(413, self.message()), status_code=413)(scope, receive, send)

    def counted(self, receive: Receive) -> Receive:
        """``receive``, raising a 413 `HTTPException` once the body passes the limit."""
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self.message())
            return message

        return counted


class BodyLimitMiddleware:
    """Refuse bodies larger than ``max_bytes`` with 413, by header or while streaming (`BodyLimit`)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.limit = BodyLimit(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.limit.declared_too_large(scope):
            await self.limit.refuse(scope, receive, send)
            return
        await self.app(scope, self.limit.counted(receive), send)


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
