"""Experiments: a unit's assignment and the results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from cartlift.serve._deps import AdminKey, ReadKey, ServiceDep
from cartlift.serve._ops import experiment_assignment, experiment_results
from cartlift.serve._schemas import AssignmentPublic
from cartlift.serve.routes._common import errors

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

Name = Annotated[str, Path(min_length=1, max_length=200)]


@router.get(
    "/{name}/assignment",
    response_model=AssignmentPublic,
    responses=errors(401, 403, 404, 422, 429, 501),
    summary="A unit's variant",
    operation_id="assignment",
)
async def assignment(
    name: Name,
    service: ServiceDep,
    key: ReadKey,
    unit: Annotated[str, Query(min_length=1, max_length=200, description="The unit (usually the user id).")],
    log: Annotated[bool, Query(description="Record the exposure (what the analysis counts).")] = True,
) -> dict[str, object]:
    """The unit's variant: a pure hash of (salt, unit), the same in every process. Logs the exposure."""
    return await experiment_assignment(service, name=name, unit=unit, log=log)


@router.get(
    "/{name}/results", responses=errors(401, 403, 404, 409, 422, 429, 501), summary="Experiment results"
)
async def results(
    name: Name,
    service: ServiceDep,
    key: AdminKey,
    metric: Annotated[str, Query(max_length=64, description="A store metric, e.g. purchased.")] = "purchased",
) -> dict[str, object]:
    """SRM check and per-variant mean, lift, interval and p-value of ``metric`` over exposed units."""
    return await experiment_results(service, name=name, metric=metric)
