"""Audiences for an e-mail tool to pull: the audiences package run on the service's store.

Building an audience fits the clustering, CLV and (without saved models) the abandonment and
recommendation models, so an answer is kept for `_SECONDS` per (audience, min CLV) and pages
of it are cut from the kept rows. The newest audit record is part of the key: an erasure
writes one, so a kept audience never outlives an erasure. Only the DuckDB store runs it;
PostgreSQL answers 501.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cartlift._jsonable import jsonable
from cartlift.errors import DataError
from cartlift.serve._errors import ApiError
from cartlift.serve._service import Service

__all__ = ["audience"]

_SECONDS = 60.0
_kept: dict[tuple[int, str, float | None, str | None], tuple[float, dict[str, Any]]] = {}
_lock = asyncio.Lock()


async def _build(service: Service, name: str, min_clv: float | None) -> dict[str, Any]:
    from cartlift.audiences import build_audience

    storage = service.storage
    if not storage.supports_store_jobs:
        raise ApiError(501, f"Audiences are built on the DuckDB store, not on a {storage.kind} store.")
    segment = None if name == "all" else name
    try:
        built = await storage.with_store(
            lambda store: build_audience(
                store, segment=segment, min_clv=min_clv, audit_key=service.erased.secret
            )
        )
    except DataError as e:
        status = 404 if str(e).startswith("No segment") else 409
        raise ApiError(status, str(e)) from None
    return jsonable(built.to_dict())


async def audience(
    service: Service, *, name: str, min_clv: float | None = None, limit: int = 1000, offset: int = 0
) -> dict[str, Any]:
    """One page of audience ``name`` (an RFM segment, ``cluster N`` or ``all``).

    Returns ``name, customers, columns, notes, offset, limit, rows``.
    """
    latest = await service.storage.audit_log(limit=1)
    key = (id(service), name.lower(), min_clv, str(latest[0]["audit_id"]) if latest else None)
    async with _lock:  # one build at a time: concurrent pulls of the same audience share it
        hit = _kept.get(key)
        if hit is None or time.monotonic() - hit[0] >= _SECONDS:
            now = time.monotonic()
            for old in [k for k, v in _kept.items() if now - v[0] >= _SECONDS]:
                del _kept[old]
            hit = (now, await _build(service, name, min_clv))
            _kept[key] = hit
    whole = hit[1]
    return {**whole, "offset": offset, "limit": limit, "rows": whole["rows"][offset : offset + limit]}
