"""Recommendations: for a user, for a cart, similar items."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from cartlift.serve._deps import ReadKey, ServiceDep
from cartlift.serve._errors import ApiError
from cartlift.serve._schemas import CartRecommendationCreate, RecommendationsPublic
from cartlift.serve.routes._common import errors

router = APIRouter(prefix="/v1", tags=["recommendations"])


def _fast(data: dict[str, Any]) -> Response:
    """Serialise directly: the hot path skips re-validating a dict the service already built."""
    body = {k: v for k, v in data.items() if v is not None}
    return Response(json.dumps(body, separators=(",", ":")).encode(), media_type="application/json")


K = Annotated[int, Query(ge=1, le=100, description="How many items.")]
Id = Annotated[str, Path(min_length=1, max_length=200)]


@router.get(
    "/users/{user_id}/recommendations",
    response_model=RecommendationsPublic,
    response_model_exclude_none=True,
    responses=errors(401, 403, 422, 429),
    summary="Recommendations for a user",
)
async def user_recommendations(
    user_id: Id,
    service: ServiceDep,
    key: ReadKey,
    k: K = 10,
    context: Annotated[
        Literal["home", "product", "cart"], Query(description="Where the list is shown.")
    ] = "home",
    items: Annotated[
        str | None,
        Query(
            max_length=4000,
            description="Comma-separated: the product shown (product) or the cart's items (cart).",
        ),
    ] = None,
) -> Any:
    """Personalised items; a user the models do not know gets the most popular items.

    ``context=product&items=P`` gives items similar to the product shown, ``context=cart&items=A,B``
    completes the cart; both fall back to the user's own list when the items are unknown.
    """
    shown = [i for i in (items or "").split(",") if i]
    if context != "home" and not shown:
        raise ApiError(422, f"context={context} needs the item(s) shown: add &items=PRODUCT_ID[,PRODUCT_ID].")
    if context == "cart":
        return {**await service.recommend_cart(items=shown, k=k), "user_id": user_id}
    if context == "product":
        try:
            return {**await service.similar_items(item_id=shown[0], k=k), "user_id": user_id}
        except ApiError:
            pass  # an unknown product: the user's own list is the best we can show
    return _fast(await service.recommend_user(user_id=user_id, k=k))


@router.post(
    "/recommendations/cart",
    response_model=RecommendationsPublic,
    response_model_exclude_none=True,
    responses=errors(401, 403, 422, 429),
    summary="Complete-your-cart",
)
async def cart_recommendations(
    body: CartRecommendationCreate, service: ServiceDep, key: ReadKey
) -> dict[str, object]:
    """Items that go with a cart's contents; works for anonymous sessions (no user needed)."""
    return await service.recommend_cart(items=body.items, k=body.k)


@router.get(
    "/items/{item_id}/similar",
    response_model=RecommendationsPublic,
    response_model_exclude_none=True,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="Similar items",
)
async def similar_items(item_id: Id, service: ServiceDep, key: ReadKey, k: K = 10) -> dict[str, object]:
    """The items most similar to ``item_id`` (never the item itself)."""
    return await service.similar_items(item_id=item_id, k=k)
