"""The check of a request's API key: a cache of stored keys, then scope, expiry and rate limit.

The service and its intake front process (`_front`) check keys alike; they differ only in how a
key is found (the store, or a question to the process that owns it), given as ``fetch``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from cartlift.serve._errors import ApiError
from cartlift.serve._keys import ApiKey, allows, hash_key
from cartlift.serve._limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from cartlift.serve._metrics import Metrics
from cartlift.serve._settings import ServeSettings
from cartlift.store import KeyRecord

__all__ = ["KeyGate"]

_KEY_CACHE_SECONDS = 30.0
_MAX_CACHED = 10_000
"""Unknown tokens must not grow the cache without bound: past this many it starts again."""


class KeyGate:
    """Checks bearer tokens against stored keys, cached, for one process.

    Parameters
    ----------
    fetch : callable
        ``await fetch(key_hash)``: the stored key with this hash unless revoked, else None.
    settings : ServeSettings
        The default rate limit and burst.
    metrics : Metrics
        Counts the requests refused by the rate limit.
    """

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[KeyRecord | None]],
        settings: ServeSettings,
        metrics: Metrics,
    ) -> None:
        self._fetch = fetch
        self._settings = settings
        self._metrics = metrics
        # shared by every process of the service through Redis when it has one
        self.limiter: RateLimiter = (
            RedisRateLimiter(settings.redis, settings.redis_prefix) if settings.redis else MemoryRateLimiter()
        )
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}
        self.generation = 0
        """Bumped whenever a key may have been revoked: a look-up that began before is not cached."""
        self.trusted = True
        """False while revocations by other processes cannot be heard: every request looks its key up."""
        self._lookups: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def authenticate(self, *, token: str | None, scope: str) -> ApiKey:
        """The key behind a bearer token, checked for ``scope`` and its rate limit."""
        if not token:
            raise ApiError(
                401,
                "An API key is required: send `Authorization: Bearer KEY` (create one with `cartlift keys create`).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        digest = hash_key(token)
        cached = self._keys.get(digest) if self.trusted else None
        if cached is None:
            # shielded: a client that hangs up must not cancel the look-up others wait on
            key = await asyncio.shield(self._lookup(digest))
        else:
            key = cached[1]
            if time.monotonic() - cached[0] > _KEY_CACHE_SECONDS:
                # stale while revalidating: one background look-up, not one per waiting request
                self._lookup(digest)
        if key is None:
            raise ApiError(401, "The API key is unknown or revoked.", headers={"WWW-Authenticate": "Bearer"})
        if key.expired():
            raise ApiError(
                401,
                f"The API key {key.key_id}… expired at {key.expires_at:%Y-%m-%d %H:%M} UTC; ask an admin for a new one.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not allows(key.scope, scope):
            raise ApiError(
                403, f"This key has scope {key.scope!r}; this route needs scope {scope!r} (or admin)."
            )
        s = self._settings
        rate = key.rate_limit or s.rate_limit
        burst = max(s.rate_burst if key.rate_limit is None else key.rate_limit, 1.0)
        wait = self.limiter.hit(key.key_id, rate, burst)
        if wait is not None:
            self._metrics.rate_limited += 1
            raise ApiError(
                429,
                f"Rate limit of {rate:g} requests per second for this key exceeded; retry after {wait:.2f} s.",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return key

    def _lookup(self, digest: str) -> asyncio.Future[ApiKey | None]:
        """The stored key for a hash, as a future; concurrent look-ups of one hash share one query."""
        running = self._lookups.get(digest)
        if running is None:
            running = asyncio.ensure_future(self._load(digest))
            self._lookups[digest] = running
            running.add_done_callback(lambda _: self._lookups.pop(digest, None))
        return running

    async def _load(self, digest: str) -> ApiKey | None:
        generation = self.generation
        found = await self._fetch(digest)
        key = None if found is None else ApiKey(*found)
        if len(self._keys) > _MAX_CACHED:
            self._keys.clear()
        if generation == self.generation:  # else it may predate a revocation: not cached
            self._keys[digest] = (time.monotonic(), key)
        return key

    def close(self) -> None:
        """Close the rate limiter's connection (Redis)."""
        self.limiter.close()

    def changed(self, trusted: bool | None = None) -> None:
        """A key may have been revoked: forget every cached key (``trusted``: whether revocations
        by other processes are heard from now on; None keeps it as it is)."""
        self.generation += 1
        self._keys.clear()
        if trusted is not None:
            self.trusted = trusted
