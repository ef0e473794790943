"""Live carts: risk of abandonment and the next best action."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from cartlift.serve._decide import decide as run_decide
from cartlift.serve._deps import ReadKey, ServiceDep
from cartlift.serve._schemas import RiskPublic
from cartlift.serve.routes._common import errors

router = APIRouter(prefix="/v1/carts", tags=["carts"])

SessionId = Annotated[str, Path(min_length=1, max_length=200)]


@router.get(
    "/{session_id}/risk",
    response_model=RiskPublic,
    responses=errors(401, 403, 404, 422, 429),
    summary="Cart risk",
    operation_id="cart_risk",
)
async def cart_risk(session_id: SessionId, service: ServiceDep, key: ReadKey) -> dict[str, object]:
    """The probability that the session's cart is abandoned, from live features updated by every event."""
    return await service.cart_risk(session_id=session_id)


@router.post(
    "/{session_id}/decide",
    responses=errors(401, 403, 404, 409, 422, 429, 501),
    summary="Next best action",
    operation_id="decide",
)
async def decide(
    session_id: SessionId,
    service: ServiceDep,
    key: ReadKey,
    log: Annotated[bool, Query(description="Log the decision (false: only show what would be done).")] = True,
) -> dict[str, object]:
    """The next best action for an abandoned cart (the act package's profit policy under the store's
    rules), logged with its propensity. The cart's context comes from the store; a cart already
    decided gets its first decision back, whichever service process decided it, so a customer is
    contacted once per cart.
    """
    return await run_decide(service, session_id=session_id, log=log)
