"""Administration: model reload, right to erasure, keys, audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from cartlift.serve._deps import AdminKey, ServiceDep
from cartlift.serve._schemas import ErasurePublic, KeyCreate, KeyPublic, ReloadPublic
from cartlift.serve.routes._common import errors

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
)
async def erase_user(
    user_id: Annotated[str, Path(min_length=1, max_length=200)], service: ServiceDep, key: AdminKey
) -> dict[str, object]:
    """Delete the user's events, decisions, exposures, quarantined records and live sessions.

    An audit record keeps when, by which key, and how many rows (the user id itself only as a
    hash). Trained models forget the user at their next training (`cartlift train --all`).
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
    """Create an API key while the service runs (the secret is shown once)."""
    secret, record = await service.create_key(
        scope=body.scope, rate_limit=body.rate_limit, label=body.label, origins=body.origins
    )
    return {"key": secret, "key_id": record.key_id, "scope": record.scope, "rate_limit": record.rate_limit}


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
