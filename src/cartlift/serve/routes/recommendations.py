"""Recommendations: for a user, for a cart, similar items."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final, Literal

import fastapi.routing
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from cartlift.serve._deps import (
    ReadKey,
    ServiceDep,
    authorize,
    get_service,
    require_read,
    running_service,
)
from cartlift.serve._errors import ApiError
from cartlift.serve._schemas import CartRecommendationCreate, RecommendationsPublic
from cartlift.serve._shortcuts import answer_directly
from cartlift.serve.routes._common import errors

router = APIRouter(prefix="/v1", tags=["recommendations"])

K_DEFAULT: Final = 10
K_MAX: Final = 100
ID_MAX: Final = 200
K = Annotated[int, Query(ge=1, le=K_MAX, description="How many items.")]
Id = Annotated[str, Path(min_length=1, max_length=ID_MAX)]


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def plain_k(query: bytes) -> int | None:
    """``k`` of a query string that is empty or exactly ``k=N`` with ``1 <= N <= 100``, else None.

    Those are the common requests whose parameters need no other check; anything else (another
    parameter, an encoding, a leading zero, a value out of range) returns None and takes the
    general path, which validates it and answers any error.
    """
    if not query:
        return K_DEFAULT
    value = query[2:]
    if query[:2] != b"k=" or not value.isdigit() or len(value) > 3 or value[:1] == b"0":
        return None
    k = int(value)
    return k if k <= K_MAX else None


class UserRecommendationsRoute(APIRoute):
    """The route, with a shortcut for its common request: ``GET .../recommendations[?k=N]``.

    FastAPI resolves the dependencies and validates every declared parameter (``k``, ``context``,
    ``items``, the path) per request, which costs several times the cached answer itself. When
    the query is empty or only a valid ``k`` and the id is within its length, the shortcut runs
    the same checks itself (`authorize`: the service is up, the key and its scope, the rate
    limit) and answers the same bytes; every other request, including every invalid one, goes
    through FastAPI's handler unchanged. The shortcut is only on when the route declares exactly
    the dependencies and parameters it was written for, and it steps aside while dependencies
    are overridden.
    """

    def _declared(self) -> Dependant:
        # FastAPI 0.16x builds the handler of an included route once per inclusion, adding the
        # inclusion's dependencies, and names the inclusion in this context variable while it
        # does (as `APIRoute.get_route_handler` reads it); older versions copy the route instead
        current = getattr(fastapi.routing, "_effective_route_context_var", None)
        context = current.get() if current is not None else None
        if context is not None and context.original_route is self and context.dependant is not None:
            dependant: Dependant = context.dependant
            return dependant
        return self.dependant

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        general = super().get_route_handler()
        declared = self._declared()
        shape = (
            [d.call for d in declared.dependencies],
            [p.name for p in declared.path_params],
            {p.name for p in declared.query_params},
            declared.header_params or declared.cookie_params or declared.body_params,
        )
        if shape != ([get_service, require_read], ["user_id"], {"k", "context", "items"}, []):
            return general  # a route the shortcut was not written for

        async def handler(request: Request) -> Response:
            k = plain_k(request.scope["query_string"])
            user_id = request.path_params.get("user_id")
            if (
                k is None
                or not isinstance(user_id, str)
                or not 1 <= len(user_id) <= ID_MAX
                or getattr(request.app, "dependency_overrides", None)
            ):
                return await general(request)
            return await _plain_list(request, user_id, k)

        return handler


async def _plain_list(request: Request, user_id: str, k: int) -> Response:
    """The common request's answer: the user's cached list (`authorize` first)."""
    await authorize(request, "read")
    return _json(await running_service(request).recommend_user_json(user_id=user_id, k=k))


_USERS, _RECOMMENDATIONS = "/v1/users/", "/recommendations"


def plain_user_request(scope: Scope) -> tuple[str, int] | None:
    """(user id, k) of a ``GET /v1/users/{user_id}/recommendations[?k=N]`` the shortcut answers, else None.

    The same requests as `UserRecommendationsRoute`'s shortcut (the path template's ``{user_id}``
    holds no ``/``), for the app to send to `user_recommendations_directly`.
    """
    path: str = scope["path"]
    if not (path.startswith(_USERS) and path.endswith(_RECOMMENDATIONS)):
        return None
    user_id = path[len(_USERS) : -len(_RECOMMENDATIONS)]
    k = plain_k(scope["query_string"])
    if k is None or not 1 <= len(user_id) <= ID_MAX or "/" in user_id:
        return None
    return user_id, k


async def user_recommendations_directly(
    app: FastAPI, scope: Scope, receive: Receive, send: Send, user_id: str, k: int
) -> None:
    """Answer a `plain_user_request` in front of the framework (`answer_directly`)."""

    async def respond(request: Request) -> Response:
        return await _plain_list(request, user_id, k)

    await answer_directly(
        app, scope, receive, send, route="/v1/users/{user_id}/recommendations", respond=respond
    )


async def user_recommendations(
    user_id: Id,
    service: ServiceDep,
    key: ReadKey,
    k: K = K_DEFAULT,
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
        return {**await service.recommend_cart(items=shown, k=k, user_id=user_id), "user_id": user_id}
    if context == "product":
        try:
            return {**await service.similar_items(item_id=shown[0], k=k, user_id=user_id), "user_id": user_id}
        except ApiError:
            pass  # an unknown product: the user's own list is the best we can show
    return _json(await service.recommend_user_json(user_id=user_id, k=k, context=context))


router.add_api_route(
    "/users/{user_id}/recommendations",
    user_recommendations,
    methods=["GET"],
    response_model=RecommendationsPublic,
    response_model_exclude_none=True,
    responses=errors(401, 403, 422, 429),
    summary="Recommendations for a user",
    route_class_override=UserRecommendationsRoute,
)


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
    """Items that go with a cart's contents; works for anonymous sessions (no user needed).

    ``user_id`` and ``session_id``, when given, say to whom the list is shown (the impression log
    links a later purchase of a listed item to it).
    """
    return await service.recommend_cart(
        items=body.items, k=body.k, user_id=body.user_id, session_id=body.session_id
    )


@router.get(
    "/items/{item_id}/similar",
    response_model=RecommendationsPublic,
    response_model_exclude_none=True,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="Similar items",
)
async def similar_items(
    item_id: Id, service: ServiceDep, key: ReadKey, k: K = K_DEFAULT
) -> dict[str, object]:
    """The items most similar to ``item_id`` (never the item itself)."""
    return await service.similar_items(item_id=item_id, k=k)
