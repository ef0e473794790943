"""Audiences: customers of a segment with contact (where consented), value and recommendations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from cartlift.serve._audiences import audience
from cartlift.serve._deps import AdminKey, ServiceDep
from cartlift.serve.routes._common import errors

router = APIRouter(prefix="/v1/audiences", tags=["audiences"])

Name = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/{name}", responses=errors(401, 403, 404, 409, 422, 429, 501), summary="An audience")
async def get_audience(
    name: Name,
    service: ServiceDep,
    key: AdminKey,
    min_clv: Annotated[float | None, Query(description="Only customers with predicted CLV >= this.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Customers per page.")] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Customers to skip.")] = 0,
) -> dict[str, object]:
    """The customers of an RFM segment (e.g. Champions), a cluster (``cluster 2``) or ``all``: the
    columns of ``cartlift export audiences``. Addresses only for customers with e-mail consent;
    erased customers never appear. Needs an admin key (the rows are personal data).
    """
    return await audience(service, name=name, min_clv=min_clv, limit=limit, offset=offset)
