"""Administration: model reload, right to erasure, keys, audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from cartlift.serve._deps import AdminKey, ServiceDep
from cartlift.serve._schemas import ErasurePublic, KeyCreate, KeyList, KeyPublic, KeyRevoked, ReloadPublic
from cartlift.serve.routes._common import errors
from cartlift.store import now_utc, utc

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post(
    "/admin/reload", response_model=ReloadPublic, responses=errors(401, 403, 429), summary="Reload models"
)
async def reload(service: ServiceDep, key: AdminKey) -> dict[str, object]:
    """Load the newest model versions from the registry and swap them in without dropping requests."""
    return await service.reload_models()


@router.delete(
    "/users/{user_id}",
    response_model=ErasurePublic,
    responses=errors(401, 403, 404, 422, 429),
    summary="Erase a user",
    operation_id="erase_user",
)
async def erase_user(
    user_id: Annotated[str, Path(min_length=1, max_length=200)], service: ServiceDep, key: AdminKey
) -> dict[str, object]:
    """Delete the user's events, decisions, exposures, quarantined records and live sessions.

    An audit record keeps when, by which key, and how many rows (the user id only as a keyed
    hash). Models trained before the erasure answer for the user as for a stranger from now on,
    and forget the user at their next training (`cartlift train --all`).
    """
    return await service.erase_user(user_id=user_id, actor=key.key_id)


@router.post(
    "/admin/keys",
    response_model=KeyPublic,
    status_code=201,
    responses=errors(401, 403, 422, 429),
    summary="New key",
)
async def create_key(body: KeyCreate, service: ServiceDep, key: AdminKey) -> dict[str, object]:
    """Create an API key while the service runs (the secret is shown once), optionally expiring."""
    expires = now_utc() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    secret, record = await service.create_key(
        scope=body.scope,
        rate_limit=body.rate_limit,
        label=body.label,
        expires_at=expires,
        origins=body.origins,
    )
    return {
        "key": secret,
        "key_id": record.key_id,
        "scope": record.scope,
        "rate_limit": record.rate_limit,
        "expires_at": utc(record.expires_at),
    }


@router.get("/admin/keys", response_model=KeyList, responses=errors(401, 403, 429), summary="List keys")
async def list_keys(service: ServiceDep, key: AdminKey) -> dict[str, object]:
    """Every key of the store (id, scope, label, expiry, revocation), never a secret or a hash."""
    return {"keys": await service.storage.list_keys()}


@router.delete(
    "/admin/keys/{key_id}",
    response_model=KeyRevoked,
    responses=errors(401, 403, 404, 422, 429),
    summary="Revoke a key",
)
async def revoke_key(
    key_id: Annotated[str, Path(min_length=1, max_length=64)], service: ServiceDep, key: AdminKey
) -> dict[str, object]:
    """Revoke a key by its public id (the 8 characters after ``cl_``); it stops working at once."""
    return {"key_id": key_id, "revoked": await service.revoke_key(key_id=key_id)}


@router.get("/admin/audit", responses=errors(401, 403, 422, 429), summary="Audit log")
async def audit(
    service: ServiceDep, key: AdminKey, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, object]:
    """The latest audit records (erasures), newest first."""
    return {"records": await service.storage.audit_log(limit=limit)}


@router.post("/admin/train", responses=errors(401, 403, 409, 429), summary="Retrain and reload")
async def train(service: ServiceDep, key: AdminKey) -> dict[str, object]:
    """Retrain every model on a snapshot of the store, publish new versions, and swap them in."""
    return await service.train_now()
