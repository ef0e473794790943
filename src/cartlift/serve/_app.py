"""The FastAPI application: lifespan, middleware, error handlers, routers."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from cartlift import __version__
from cartlift.serve._errors import install_error_handlers
from cartlift.serve._limits import BodyLimit, BodyLimitMiddleware
from cartlift.serve._metrics import MetricsMiddleware
from cartlift.serve._schemas import EventBatchCreate
from cartlift.serve._service import Service
from cartlift.serve._settings import ServeSettings
from cartlift.serve.routes import (
    admin,
    audiences,
    carts,
    dashboard,
    deliver,
    events,
    experiments,
    integrations,
    ops,
    recommendations,
    track,
)

__all__ = ["app_from_env", "create_app", "openapi_with_security"]

DESCRIPTION = """Collect events, recommend, score live carts, assign experiments.

Every `/v1` route needs `Authorization: Bearer KEY` (`cartlift keys create --scope ingest|read|admin`), except the tracker's (`?key=` with a `track` key bound to origins) and Shopify's webhook (signed with `X-Shopify-Hmac-Sha256`).
Errors answer `{"error": {"status", "code", "message"}}`.
"""


class _ServiceApp(FastAPI):
    """FastAPI, with its two hottest requests answered in front of its layers (`cartlift.serve._shortcuts`).

    A posted event batch and a user's plain recommendations (``?k=N`` or nothing) take the
    shortcut when nothing else would wrap them: without CORS (whose middleware adds headers),
    dependency overrides (tests) or a root path. Every other request goes through the whole stack.
    """

    events_limit: BodyLimit | None = None
    """The body limit when the shortcuts are on, else None."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.events_limit
        if (
            limit is not None
            and scope["type"] == "http"
            and not self.dependency_overrides
            and not self.root_path
        ):
            method = scope["method"]
            if method == "POST" and scope["path"] == "/v1/events":
                await events.post_events_directly(self, limit, scope, receive, send)
                return
            if method == "GET" and (plain := recommendations.plain_user_request(scope)) is not None:
                await recommendations.user_recommendations_directly(self, scope, receive, send, *plain)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The service as an ASGI app; the store opens when the app starts (lifespan).

    Parameters
    ----------
    settings : ServeSettings, optional
        Default: read from ``CARTLIFT_SERVE_*`` environment variables.
    """
    settings = settings if settings is not None else ServeSettings()
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        stop_delivery = await deliver.start_worker(service)
        try:
            yield
        finally:
            await asyncio.to_thread(stop_delivery)
            await service.stop()

    app = _ServiceApp(
        title="cartlift",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by the dashboard router
        redoc_url=None,
    )
    app.state.service = service
    app.openapi = lambda: openapi_with_security(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    # routers are tried in this order for every request, and each costs FastAPI a few microseconds
    # to try: the hottest routes first (the paths do not overlap, so the order changes nothing else)
    for module in (
        recommendations,
        events,
        ops,
        carts,
        experiments,
        audiences,
        admin,
        deliver,
        integrations,
        track,
        dashboard,
    ):
        app.include_router(module.router)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    else:
        app.events_limit = BodyLimit(settings.max_body_bytes)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # outermost, so refused bodies and errors are counted too
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app


def openapi_with_security(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with the bearer key declared on every ``/v1`` operation."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        # POST /v1/events reads its body itself (`_event_body`); its schema is still the pydantic model
        batch = EventBatchCreate.model_json_schema(ref_template="#/components/schemas/{model}")
        components.setdefault("schemas", {}).update({**batch.pop("$defs", {}), "EventBatchCreate": batch})
        schemes = components.setdefault("securitySchemes", {})
        schemes["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `cartlift keys create --scope ingest|read|admin`.",
        }
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    # an operation that declares its own (public: ``[]``) keeps it
                    operation.setdefault("security", [{"bearer": []}])
        app.openapi_schema = schema
    return app.openapi_schema


GC_THRESHOLDS: Final = (5_000, 20, 100)
"""The collector's thresholds in a process of `cartlift serve` (Python's default: 700, 10, 10).

The live sessions keep every posted event for hours, so under an event load the default ran
about 90 young passes a second and a full pass every 2 s or so, each full pass walking every
event kept (10-30 ms once sessions filled: requests in flight waited, the latency's tail).
These make young passes 7 times rarer and a full pass minutes apart at the same load;
events at 64 connections (the `benchmarks/service.py` load on a copy of its shop), three runs
alternating with the default: p99 47, 55, 61 ms against 64, 59, 65 ms, and 1,857, 1,609, 1,388
req/s against 1,657, 1,615, 1,333 (a noisy day: the pairs moved together)."""


def app_from_env() -> FastAPI:
    """The app with settings from the environment (uvicorn's ``--factory`` entry point).

    The process is the service's own (each worker's too), so this also sets its collector's
    thresholds (`GC_THRESHOLDS`); an app made by `create_app` leaves its host process's alone.
    """
    gc.set_threshold(*GC_THRESHOLDS)
    return create_app(ServeSettings())
